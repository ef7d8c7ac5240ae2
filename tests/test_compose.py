"""docker-compose.yml and the Dockerfile: static checks, then a rehearsal of what the engine would do.

Docker cannot run in CI here.  The static checks catch the usual rot (a
renamed command or flag, a DEDUP_* variable that no setting reads, a build
context that moved).  The rehearsal builds what the Dockerfile builds -- its
COPYs into a fresh folder, its pip RUNs into a clean venv -- then starts each
dedup service with its own command and environment, the ``redis`` host
pointed at the test redis-server, and runs its healthcheck until healthy.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

import click
import pytest
import yaml

from .conftest import ROOT, free_port
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
    assert re.search(r"""pip install ['"]\.\[worker,web\]['"]""", text)  # the worker's metrics, the dashboard
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


# -- rehearsal ------------------------------------------------------------------
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# the port each service listens on inside its container, and the variable that sets it: the rehearsal shares one
# network namespace with everything else on the machine, so it moves them to free ports (healthchecks follow)
SERVICE_PORTS = {"worker": ("DEDUP_METRICS_PORT", 9100), "dashboard": ("DEDUP_PORT", 8000)}


def dockerfile(instruction: str) -> list[str]:
    return re.findall(rf"^{instruction}\s+(.*)$", DOCKERFILE, re.M)


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in dockerfile("ENV"):
        env.update(pair.split("=", 1) for pair in shlex.split(line))
    return env


def build_image(app: Path) -> Path:
    """The Dockerfile's COPYs into ``app``, its pip RUNs into a venv; returns the venv's bin folder.

    The venv is kept in the temp folder under the hash of Dockerfile and pyproject.toml: installing the
    dependencies from the package index takes a minute or more, and only those two files change them.
    Each run installs the package itself again from ``app``, so code edits are always in.
    """
    for line in dockerfile("COPY"):
        src, dst = shlex.split(line)
        target = app / dst / (Path(src).name if dst.endswith("/") else "")
        (shutil.copytree if (ROOT / src).is_dir() else shutil.copy)(ROOT / src, target)
    installs = [line for line in dockerfile("RUN") if line.startswith("pip install")]
    assert installs, "the Dockerfile installs nothing with pip"
    key = hashlib.sha256(DOCKERFILE.encode() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    venv = Path(tempfile.gettempdir()) / f"dedup-compose-venv-{key}"
    env = {**os.environ, **dockerfile_env()}
    env.pop("PIP_NO_CACHE_DIR", None)  # the image needs no pip cache; the rehearsal reuses one
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; a venv cannot move once built
        if not (venv / "ready").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        refresh = " --no-deps --force-reinstall" if (venv / "ready").exists() else ""
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
        for line in installs:
            subprocess.run(line + refresh, shell=True, cwd=app, env=env, check=True, capture_output=True, timeout=600)
        (venv / "ready").touch()
    return venv / "bin"


def in_image(argv: list[str], bin_dir: Path) -> list[str]:
    """A container command with its program found in the venv, as the image's PATH would find it."""
    return [str(bin_dir / argv[0]) if (bin_dir / argv[0]).exists() else argv[0], *argv[1:]]


def pointed_at(value: str, redis_url: str) -> str:
    """Service host names -> the test redis-server (the engine's DNS would resolve ``redis``)."""
    return value.replace("redis://redis:6379/0", redis_url)


def start_service(name: str, bin_dir: Path, app: Path, redis_url: str) -> tuple[subprocess.Popen, list[str], int]:
    """Start a service as compose would; returns the process, its healthcheck command and its port."""
    svc = SERVICES[name]
    var, port_in_compose = SERVICE_PORTS[name]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEDUP_")}
    env.update(dockerfile_env())
    env.update({k: pointed_at(v, redis_url) for k, v in service_env(name).items()})
    env[var] = str(port)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    argv = svc.get("command") or shlex.split(dockerfile("CMD")[-1].strip("[]").replace(",", " "))
    proc = subprocess.Popen(in_image([pointed_at(a, redis_url) for a in argv], bin_dir), cwd=app, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    test = svc["healthcheck"]["test"]
    assert test[0] == "CMD", f"{name}: healthcheck must be exec form"
    assert any(str(port_in_compose) in part for part in test), f"{name}: healthcheck does not check its port"
    check = in_image([part.replace(str(port_in_compose), str(port)) for part in test[1:]], bin_dir)
    return proc, check, port


def wait_healthy(name: str, proc: subprocess.Popen, check: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{proc.stdout.read()}")
        if subprocess.run(check, capture_output=True, timeout=10).returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} not healthy after {timeout:.0f} s")
        time.sleep(0.3)


def listening_on_every_interface(port: int) -> bool:
    """Whether some socket listens on 0.0.0.0 or [::] at ``port`` (Linux /proc/net/tcp*)."""
    for table, anywhere in (("/proc/net/tcp", "00000000"), ("/proc/net/tcp6", "0" * 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local == f"{anywhere}:{port:04X}":
                return True
    return False


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    app = tmp_path_factory.mktemp("app")
    return build_image(app), app


def test_the_worker_service_consumes_and_publishes_a_message(image, redis_url):
    import redis

    bin_dir, app = image
    proc, check, _ = start_service("worker", bin_dir, app, redis_url)
    try:
        wait_healthy("worker", proc, check)
        env = service_env("worker")
        client = redis.Redis.from_url(redis_url)
        client.xadd(env["DEDUP_INPUT_STREAM"], {"article": b'{"id": "a1", "text": "Floods closed the M62 near Leeds."}'})
        deadline = time.monotonic() + 30
        while not (out := client.xrange(env["DEDUP_OUTPUT_STREAM"])) and time.monotonic() < deadline:
            time.sleep(0.2)
        client.close()
        assert out and out[0][1][b"id"] == b"a1", out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_dashboard_service_listens_on_every_interface_and_answers(image, redis_url):
    bin_dir, app = image
    proc, check, port = start_service("dashboard", bin_dir, app, redis_url)
    try:
        wait_healthy("dashboard", proc, check)
        assert listening_on_every_interface(port), "the dashboard listens on loopback only: set DEDUP_HOST=0.0.0.0"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.status == 200 and b"<html" in resp.read().lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
