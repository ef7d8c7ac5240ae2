"""Shared fixtures: a throwaway redis-server per test session, and the seed articles.

The server runs on a free port in a temp dir, so tests can kill, restart and
flush it without touching anyone else's Redis (never the one on 6379).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from dedup.index import MemoryIndex, open_index
from dedup.settings import Settings

# Property tests check results, not speed: on a loaded machine a wall-clock deadline only makes them flaky.
settings.register_profile("dedup", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("dedup")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
DATA = Path(os.environ.get("DEDUP_DATA_DIR", ROOT.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server process this test session owns."""

    def __init__(self, workdir: Path, port: int | None = None, *extra: str) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed: run `make test` (it installs it) or `apt-get install redis-server`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--save", "", "--appendonly", "no", "--protected-mode", "no", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """URL of the session's throwaway server, flushed before each test (it is ours alone)."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


# "spread" is the Redis index with each band's buckets in a slot of its own (the Redis Cluster layout),
# here on one server; tests/test_index_spread.py runs it on a real cluster
INDEX_KINDS = ["memory", "redis", "spread"]


@pytest.fixture(params=INDEX_KINDS)
def index(request):
    """Each index implementation with the default settings, in turn: what the storage contract tests run on
    (the Redis ones against the session's throwaway server, flushed)."""
    if request.param == "memory":
        idx = MemoryIndex(Settings())
    else:
        url = request.getfixturevalue("redis_url")
        idx = open_index(Settings(redis_layout="slot" if request.param == "redis" else "spread"), url, namespace="t")
    yield idx
    idx.close()


@pytest.fixture(scope="session")
def seed_paths():
    return sorted(str(p) for p in SEEDS.glob("*.txt"))


def direct_calls(idx, made: list | None = None) -> list:
    """The names of the script calls a Redis index sends on its own wire from now on (appended to ``made``),
    for tests that count round trips."""
    made = [] if made is None else made
    real = idx._direct.call

    def call(name, args):
        done, reply = real(name, args)
        if done:
            made.append(name)
        return done, reply

    idx._direct.call = call
    return made


def data_file(name: str) -> Path:
    """A file of the labelled evaluation data; the test fails (not skips) when it is missing."""
    path = DATA / name
    if not path.exists():
        pytest.fail(f"evaluation data {path} is missing: set DEDUP_DATA_DIR to the folder holding {name}")
    return path


def meter_articles(n: int = 160) -> list:
    """The first ``n`` meter-dev articles, with only what a feed carries (id, title, text)."""
    import json

    from dedup.records import Article

    with data_file("meter-dev.jsonl").open(encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(n), f)]
    return [Article(id=r["id"], text=r["text"], title=r["title"]) for r in rows]


def _cluster_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair for a cluster node")


def wait_cluster_ok(nodes: list[RedisServer], timeout: float = 30) -> None:
    """Until every live node says the cluster is ok (all slots served)."""
    import redis

    deadline = time.monotonic() + timeout
    while True:
        states = []
        for n in nodes:
            c = redis.Redis(port=n.port)
            try:
                states.append(c.cluster("info")["cluster_state"])
            finally:
                c.close()
        if all(s == "ok" for s in states):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"cluster did not become ok: {states}")
        time.sleep(0.2)


def start_cluster(base: Path, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 2000
                  ) -> list[RedisServer]:
    """A real Redis Cluster on loopback: ``masters`` masters with ``replicas`` replicas each."""
    nodes = [RedisServer(base / f"n{i}", _cluster_port(), "--cluster-enabled", "yes",
                         "--cluster-config-file", str(base / f"n{i}" / "nodes.conf"),
                         "--cluster-node-timeout", str(node_timeout_ms)) for i in range(masters * (1 + replicas))]
    try:
        for n in nodes:
            n.start()
        subprocess.run([shutil.which("redis-cli") or "redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{n.port}" for n in nodes), "--cluster-replicas", str(replicas),
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        wait_cluster_ok(nodes)
    except BaseException:
        for n in nodes:
            n.stop()
        raise
    return nodes


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A real 3-master Redis Cluster on loopback (no replicas), torn down at the end of the session.

    Yields the ``redis+cluster://`` URL of one node; the client discovers the others.
    """
    nodes = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield f"redis+cluster://127.0.0.1:{nodes[0].port}", nodes
    finally:
        for n in nodes:
            n.stop()


# -- TLS, ACL users and memory limits -----------------------------------------------------------------
def make_test_ca(d: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 / localhost (openssl CLI)."""
    d.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=dedup test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    return {"ca": d / "ca.crt", "cert": d / "server.crt", "key": d / "server.key"}


class SecureRedis:
    """A redis-server that speaks only TLS (plain port off), with a password on the default user (the
    admin here) and ACL users made by :meth:`add_user`."""

    ADMIN_PASSWORD = "admin-Pw-9f3c"

    def __init__(self, workdir: Path) -> None:
        self.files = make_test_ca(workdir / "ca")
        self.ca = self.files["ca"]
        port = free_port()
        self.server = RedisServer(
            workdir / "data", port, "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(self.files["cert"]), "--tls-key-file", str(self.files["key"]),
            "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no",
            "--requirepass", self.ADMIN_PASSWORD)
        self.port = port

    def url(self, user: str = "", password: str = "", ca: bool = True) -> str:
        auth = f"{user}:{password}@" if password else ""
        return f"rediss://{auth}127.0.0.1:{self.port}/0" + (f"?ssl_ca_certs={self.ca}" if ca else "")

    def admin(self):
        import redis

        return redis.Redis.from_url(self.url(password=self.ADMIN_PASSWORD))

    def add_user(self, user: str, password: str, rule: str) -> None:
        client = self.admin()
        try:
            client.acl_setuser(user, reset=True)  # no rule left from an earlier test
            client.execute_command("ACL", "SETUSER", user, "on", f">{password}", *rule.split())
        finally:
            client.close()


@pytest.fixture(scope="module")
def secure_redis(tmp_path_factory):
    """A TLS-only redis-server with a throwaway CA and ACLs (see :class:`SecureRedis`)."""
    secure = SecureRedis(tmp_path_factory.mktemp("secure"))
    secure.server.start()
    yield secure
    secure.server.stop()


@pytest.fixture
def small_redis(tmp_path):
    """A redis-server of its own with ``maxmemory 4mb`` and ``maxmemory-policy noeviction``."""
    server = RedisServer(tmp_path / "small", None, "--maxmemory", "4mb", "--maxmemory-policy", "noeviction").start()
    yield server
    server.stop()


def fill_memory(url: str) -> int:
    """Write filler keys until the server refuses one, then put its maxmemory 256 kB under what it holds:
    over its limit, it refuses every write that may grow memory, however small.  Returns the keys written.

    (Filling alone leaves it at the edge: a command's own arguments count towards the limit while it
    runs, so a refused 64 kB value leaves room for small writes such as a script call.)"""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for n in range(200_000):
            try:
                client.set(f"filler:{n}", b"x" * 65536)
            except redis.exceptions.OutOfMemoryError:
                break
        else:
            raise RuntimeError("the server took every filler value without refusing a write: is maxmemory set?")
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]) - 256 * 1024)
        return n
    finally:
        client.close()
