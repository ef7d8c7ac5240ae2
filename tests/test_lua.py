"""The Redis index's Lua passes luacheck, checked script by script as Redis receives it (prelude, helpers,
body), with the settings in .luacheckrc (Lua 5.1 and Redis's globals).

The helpers are a library: a script uses a few of them, so luacheck reports the others unused in it.  That
is allowed for a helper's top-level definition only, and only if some script uses it; any other warning
fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from dedup.index.redis import scripts as lua_scripts
from dedup.index.redis.scripts import CLAIM, SLOT, SPREAD

from .conftest import ROOT

Parts = list[tuple[str, str]]
_WARNING = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): \((?P<code>[WE]\d+)\) (?P<msg>.*)$")
_NAME = re.compile(r"'([^']+)'")


def assembled() -> dict[str, Parts]:
    """Every script the index sends to Redis, as the parts it is assembled from."""
    out = {}
    for scripts in (SLOT, SPREAD):
        for name in scripts.SCRIPTS:
            out[name] = lua_scripts.parts(scripts.LIBS[name], name.lower())
    out["CLAIM"] = [("claim", CLAIM)]
    return out


def lint(scripts: dict[str, Parts], tmp: Path) -> tuple[list[str], list[str]]:
    """luacheck on each script: (warnings that fail, helper definitions no script uses)."""
    luacheck = shutil.which("luacheck")
    assert luacheck, "luacheck is missing: install the Debian package lua-check (scripts/system-deps.sh)"
    files, owners = [], {}
    for name, parts in scripts.items():
        path = tmp / f"{name}.lua"
        path.write_text("".join(text for _, text in parts), encoding="utf-8")
        files.append(str(path))
        owners[str(path)] = name
    run = subprocess.run([luacheck, "--config", str(ROOT / ".luacheckrc"), "--formatter", "plain", "--codes",
                          "--no-color", *files], capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stdout + run.stderr  # 1: warnings (parsed below); 2 and up: errors
    failing: list[str] = []
    unused: dict[tuple[str, str], set[str]] = {}  # (part, helper) -> scripts that leave it unused
    for line in run.stdout.splitlines():
        m = _WARNING.match(line)
        assert m, line
        script = owners[m["file"]]
        part, source_line = locate(scripts[script], int(m["line"]))
        top_level = source_line.startswith("local ")
        if m["code"] in ("W211", "W231") and top_level and part != scripts[script][-1][0]:
            unused.setdefault((part, _NAME.search(m["msg"])[1]), set()).add(script)
        else:
            failing.append(f"{script}: {part}: {m['msg']} ({m['code']}): {source_line.strip()}")
    dead = []
    for (part, helper), scripts_unused in sorted(unused.items()):
        users = {name for name, parts in scripts.items() if part in dict(parts)}
        if users <= scripts_unused:
            dead.append(f"{part}: {helper}")
    return failing, dead


def locate(parts: Parts, line: int) -> tuple[str, str]:
    """The part of a script holding its 1-based line `line`, and that line's text."""
    for name, text in parts:
        lines = text.splitlines()
        if line <= len(lines):
            return name, lines[line - 1]
        line -= len(lines)
    raise AssertionError(f"line {line} past the end of the script")


def test_every_script_passes_luacheck_as_redis_runs_it(tmp_path):
    scripts = assembled()
    for scripts_set in (SLOT, SPREAD):
        for name in scripts_set.SCRIPTS:  # the parts are exactly the text the index registers
            assert "".join(text for _, text in scripts[name]) == getattr(scripts_set, name)
    failing, dead = lint(scripts, tmp_path)
    assert failing == []
    assert dead == []


def test_every_lua_file_is_part_of_a_script():
    shipped = {p.name[:-4] for p in resources.files("dedup.index.redis").joinpath("lua").iterdir() if p.name.endswith(".lua")}
    used = {part for parts in assembled().values() for part, _ in parts}
    assert shipped == used - {"prelude"}


def test_the_check_fails_on_a_real_warning_and_on_a_helper_no_script_uses(tmp_path):
    """An unused local in a body, an undefined global and a dead helper are each reported."""
    libs = [(name, text) for name, text in lua_scripts.parts(SLOT.LIBS["PUT"], "put")[:-1]]
    extra = ("lib_extra", "local function never_called() return 1 end\n")
    body = ("body", "local unused = 1\ncheck_epoch(false)\nreturn undefined_name\n")
    failing, dead = lint({"ONE": [*libs, extra, body]}, tmp_path)
    assert any("unused variable 'unused'" in f for f in failing), failing
    assert any("'undefined_name'" in f for f in failing), failing
    assert "lib_extra: never_called" in dead
    assert len(failing) == 2

