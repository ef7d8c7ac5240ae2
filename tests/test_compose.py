"""docker-compose.yml and the Dockerfile point at real entry points and real settings.

Docker cannot run in CI here, so these checks catch the usual rot instead:
a renamed command or flag, a DEDUP_* variable that no setting reads, a
build context that moved.
"""

from __future__ import annotations

import re
import tomllib

import click
import pytest
import yaml

from .conftest import ROOT
from dedup.cli import cli, worker_command
from dedup.worker import WorkerSettings

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def known_env_vars() -> set[str]:
    """Every DEDUP_* variable some dedup command reads (settings, worker settings, --redis, ...)."""
    names: set[str] = set()
    for cmd in cli.commands.values():
        for p in cmd.params:
            env = getattr(p, "envvar", None)
            names.update([env] if isinstance(env, str) else env or [])
    return {n for n in names if n.startswith("DEDUP_")}


def service_env(name: str) -> dict[str, str]:
    env = SERVICES[name].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_services_and_redis_durability():
    assert {"redis", "worker", "dashboard"} <= set(SERVICES)
    cmd = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in cmd
    assert all("healthcheck" in s for s in SERVICES.values())
    assert "ports" not in SERVICES["worker"], "a fixed host port would stop --scale worker=N"
    assert "redis-data" in COMPOSE.get("volumes", {})


def test_worker_command_is_a_real_entry_point_with_valid_settings(monkeypatch):
    argv = SERVICES["worker"]["command"]
    if argv[:2] == ["python", "worker.py"]:
        assert (ROOT / "worker.py").is_file()
        assert "worker_command" in (ROOT / "worker.py").read_text()
        args = argv[2:]
    else:
        assert argv[:2] == ["dedup", "worker"], argv
        assert cli.commands["worker"] is worker_command
        args = argv[2:]
    env = service_env("worker")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    ctx = worker_command.make_context("worker", list(args))  # unknown flags or bad values raise here
    ws = WorkerSettings.from_values(ctx.params)
    assert ctx.params["redis_url"] == "redis://redis:6379/0", "workers must share the Redis index to scale"
    port = ws.metrics_port
    assert port and str(port) in " ".join(SERVICES["worker"]["healthcheck"]["test"])
    assert str(port) in [str(p) for p in SERVICES["worker"].get("expose", [])]


def test_dashboard_runs_the_dedup_console_script():
    argv = SERVICES["dashboard"]["command"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv[0] in scripts and scripts[argv[0]] == "dedup.cli:main"
    assert argv[1] == "serve"  # the command itself lives in the dashboard branch
    assert "--redis" in argv


@pytest.mark.parametrize("name", ["redis", "worker", "dashboard"])
def test_every_dedup_env_var_is_a_real_setting(name):
    unknown = {k for k in service_env(name) if k.startswith("DEDUP_")} - known_env_vars()
    assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"


def test_build_context_and_dockerfile():
    for name, svc in SERVICES.items():
        if "build" not in svc:
            continue
        build = svc["build"]
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
        assert context.is_dir() and dockerfile.is_file(), name
    text = (ROOT / "Dockerfile").read_text()
    assert "'.[worker]'" in text or '".[worker]"' in text  # prometheus_client for --metrics-port
    for src in re.findall(r"^COPY\s+(\S+)", text, re.M):
        assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    cmd = re.search(r"^CMD\s+(.*)$", text, re.M)
    assert cmd and "worker.py" in cmd.group(1)


def test_extras_declare_worker_and_test_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert any(d.startswith("prometheus-client") for d in extras["worker"])
    assert any(d.lower().startswith("pyyaml") for d in extras["test"])
    assert not any("prometheus" in d for d in project["dependencies"])


def test_known_env_vars_include_worker_settings():
    known = known_env_vars()
    assert {WorkerSettings.env_name(f.name) for f in WorkerSettings.declared()} <= known
    assert isinstance(cli.commands["enqueue"], click.Command)
