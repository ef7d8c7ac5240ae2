"""Settings are declared once and surface as flags, env vars and docs."""

import pytest

from dedup.settings import Settings


def test_env_vars_override_defaults_and_flags_override_env():
    s = Settings.from_env({"DEDUP_MIN_COSINE": "0.3", "DEDUP_WINDOW_DAYS": "2"}, window_days=5)
    assert (s.min_cosine, s.window_days) == (0.3, 5)


def test_bad_env_value_names_the_variable():
    with pytest.raises(ValueError, match="DEDUP_BANDS"):
        Settings.from_env({"DEDUP_BANDS": "many"})


def test_every_setting_has_help_and_appears_in_the_markdown_table():
    table = Settings.markdown_table()
    for f in Settings.declared():
        assert f.metadata["help"]
        assert f"DEDUP_{f.name.upper()}" in table


def test_readme_documents_the_current_settings():
    from .conftest import ROOT
    assert Settings.markdown_table() in (ROOT / "README.md").read_text(), "run `dedup settings --markdown` into README"


def test_boolean_settings_read_words_from_the_environment_not_truthiness():
    """bool("false") is True in Python; DEDUP_STORE_FEATURES=false must mean off."""
    assert Settings.from_env({"DEDUP_STORE_FEATURES": "false"}).store_features is False
    assert Settings.from_env({"DEDUP_STORE_FEATURES": "1"}).store_features is True
    with pytest.raises(ValueError, match="DEDUP_STORE_FEATURES"):
        Settings.from_env({"DEDUP_STORE_FEATURES": "maybe"})


def test_impossible_values_are_refused_with_the_setting_named():
    import pytest
    for name, value in (("retain_days", -1), ("window_days", -1), ("jobs", -2),
                        ("redis_layout", "sharded")):
        with pytest.raises(ValueError, match=name):
            Settings(**{name: value})
