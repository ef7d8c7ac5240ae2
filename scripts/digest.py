"""Behaviour digests: hashes of what the clustering produces, to compare two versions of the code.

For each DATASET x BACKEND the articles are ingested in file order through
``Deduper.add_many`` (default settings, ``jobs=1``) and one JSON line is printed:

* ``partition``: sha256 of the sorted list of sorted member-id lists of the final stories;
* ``story_ids``: sha256 of the sorted (article id, story id) pairs of the final stories;
* ``actions``: sha256 of the per-item outcomes in input order, one JSON line each:
  ``[id, action, story, sorted merged]``, or ``[id or null, "error", error text]``;
* ``input``: sha256 of the articles fed in (id, title, text, source, published, url), so a changed
  dataset or generator is told apart from changed behaviour;
* ``articles``, ``stories``, ``errors``: counts;
* ``views_agree``: whether the story listing and ``index.story_of`` of every article say the same;
* not compared: ``read_seconds`` (reading or generating the input), ``seconds`` (``add_many``),
  ``stories_seconds`` (reading the final stories), ``settings`` (``--set`` overrides), ``code``.

The code measured is whichever ``dedup`` package is first on the path, e.g. the tree before a refactor:

    PYTHONPATH=/path/to/old/tree .venv/bin/python scripts/digest.py --out scripts/digests-OLD.jsonl
    PYTHONPATH=. .venv/bin/python scripts/digest.py --check scripts/digests-OLD.jsonl

Without ``--redis`` the script starts its own redis-server on a free port in a temp dir (never 6379)
and stops it at the end; each Redis run gets a fresh namespace, deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from dedup.readers import article_from_json, read_paths
from dedup.service import Deduper
from dedup.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("DEDUP_DATA_DIR", ROOT.parent / "shared" / "data"))
DATASETS = ["seeds", "meter-dev", "meter-dev+bbc", "semeval-dev", "synthetic-40k"]
BACKENDS = ["memory", "redis-slot", "redis-spread"]
COMPARED = ["partition", "story_ids", "actions", "input", "articles", "stories", "errors", "views_agree"]
SYNTHETIC_SEED = 7  # bench/ingest.py's default: the same corpus the ingest benchmark measures


# -- inputs ---------------------------------------------------------------------------------
def synthetic_articles(n: int, data: Path) -> Iterator[Any]:
    """The ingest benchmark's synthetic corpus (fixed seed), as the benchmark feeds it."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import ingest
    finally:
        sys.path.pop(0)
    ingest.DATA = data  # its sentence templates come from the labelled data
    for row in ingest.synthetic(n, seed=SYNTHETIC_SEED):
        yield article_from_json(row, row["id"])


def dataset_items(name: str, data: Path) -> Iterable[Any]:
    """Articles (and BadInput items) of a dataset, in file order, read as `dedup cluster` reads paths."""
    if name == "seeds":
        return read_paths([str(ROOT / "seeds")])
    if name.startswith("synthetic-") and name.endswith("k"):
        return synthetic_articles(int(name[len("synthetic-"):-1]) * 1000, data)
    files = {
        "meter-dev": ["meter-dev.jsonl"],
        "meter-dev+bbc": ["meter-dev.jsonl", "bbc-distractors.jsonl"],
        "semeval-dev": ["semeval-dev-articles.jsonl"],
    }[name]
    for f in files:
        if not (data / f).exists():
            sys.exit(f"missing {data / f}: pass --data DIR (or set DEDUP_DATA_DIR)")
    return read_paths([str(data / f) for f in files])


# -- the one read of final stories ------------------------------------------------------------
def final_stories(dd: Deduper) -> dict[str, list[str]]:
    """{story id: sorted member ids} of every story in the index.

    The index's story listing and batched member read are the cheap way; ``Deduper.stories()``
    (which also ranks every story, slowly) is the fallback when the index names them differently.
    """
    index = dd.index
    if hasattr(index, "story_ids") and (hasattr(index, "members_many") or hasattr(index, "members")):
        sids = index.story_ids()
        out: dict[str, list[str]] = {}
        for at in range(0, len(sids), 1000):  # bounded pipelines on Redis
            part = sids[at:at + 1000]
            if hasattr(index, "members_many"):
                out.update(index.members_many(part))
            else:
                out.update({s: index.members(s) for s in part})
        return {s: sorted(ids) for s, ids in out.items() if ids}
    return {st.id: sorted(v.id for v in st.articles) for st in dd.stories()}


# -- one run --------------------------------------------------------------------------------
def sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def make_settings(backend: str, overrides: dict[str, str]) -> Settings:
    """Defaults, jobs=1, the backend's layout, then --set overrides (parsed as DEDUP_* variables are,
    from these values only, so the caller's environment does not leak in)."""
    env = {Settings.env_name(k): v for k, v in overrides.items()}
    layout = backend.split("-", 1)[1] if backend.startswith("redis-") else None
    base = {"jobs": 1, "redis_layout": layout}
    return Settings.from_env(env, **{k: v for k, v in base.items() if Settings.env_name(k) not in env})


def run_one(dataset: str, backend: str, data: Path, redis_url: str | None, overrides: dict[str, str]) -> dict:
    settings = make_settings(backend, overrides)
    url = None if backend == "memory" else redis_url
    namespace = f"digest-{uuid.uuid4().hex[:12]}"
    # error texts name their file: keep the folder out so the digest does not depend on where data lives
    strip = [str(data) + os.sep, str(ROOT / "seeds") + os.sep]
    actions = hashlib.sha256()
    inputs = hashlib.sha256()
    ingested: list[str] = []
    errors = 0

    def fed(items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            if hasattr(item, "text"):
                inputs.update((json.dumps([str(item.id), item.title, item.text, item.source,
                                           item.published.isoformat() if item.published else None, item.url],
                                          ensure_ascii=False) + "\n").encode())
            else:
                inputs.update((json.dumps(["bad", clean(str(item))], ensure_ascii=False) + "\n").encode())
            yield item

    def clean(text: str) -> str:
        for s in strip:
            text = text.replace(s, "")
        return text

    start = time.perf_counter()
    items = list(fed(dataset_items(dataset, data)))  # read (or generate) first: the ingest time is ingest only
    read_seconds = time.perf_counter() - start
    with Deduper(settings, url=url, namespace=namespace) as dd:
        try:
            start = time.perf_counter()
            for o in dd.add_many(items):
                if o.error is not None:
                    errors += 1
                    row = [str(o.article.id) if o.article is not None else None, "error", clean(str(o.error))]
                else:
                    a = o.assignment
                    ingested.append(a.article_id)
                    row = [a.article_id, a.action, a.story, sorted(a.merged)]
                actions.update((json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode())
            seconds = time.perf_counter() - start
            start = time.perf_counter()
            stories = final_stories(dd)
            stories_seconds = time.perf_counter() - start
            of = dd.index.story_of(ingested) if hasattr(dd.index, "story_of") else None
        finally:
            if url:
                drop_namespace(url, namespace)
    pairs = sorted([aid, sid] for sid, ids in stories.items() for aid in ids)
    # the story listing and the per-article story lookup are two views of one state: they must agree
    views_agree = None if of is None else sorted([k, v] for k, v in of.items()) == pairs
    return {
        "dataset": dataset, "backend": backend,
        "partition": sha(sorted(stories.values())),
        "story_ids": sha(pairs),
        "actions": actions.hexdigest(),
        "input": inputs.hexdigest(),
        "articles": len(ingested), "stories": len(stories), "errors": errors,
        "views_agree": views_agree,
        "read_seconds": round(read_seconds, 2), "seconds": round(seconds, 2),
        "stories_seconds": round(stories_seconds, 2),
        "settings": overrides,
        "code": code_version(),
    }


def code_version() -> str:
    """Commit of the tree the dedup package was imported from (+dirty when it has local changes)."""
    import dedup

    where = Path(dedup.__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(where)
    return commit + ("+dirty" if dirty else "")


# -- redis ----------------------------------------------------------------------------------
def drop_namespace(url: str, namespace: str) -> None:
    """Delete every key of one index: ``{ns}:...`` and the spread layout's ``{ns:b<g>...}:...``."""
    import redis

    if url.startswith("redis+cluster://"):  # keys spread over the masters: a plain client sees one of them
        print(f"note: namespace {namespace} left on the cluster; delete its keys by hand", file=sys.stderr)
        return
    r = redis.Redis.from_url(url)
    try:
        batch = []
        for k in r.scan_iter(match="{" + namespace + "*", count=1000):
            batch.append(k)
            if len(batch) >= 1000:
                r.delete(*batch)
                batch.clear()
        if batch:
            r.delete(*batch)
    finally:
        r.close()


@contextlib.contextmanager
def own_redis() -> Iterator[str]:
    """A redis-server of our own on a free port, without persistence, stopped on the way out."""
    exe = shutil.which("redis-server")
    if exe is None:
        sys.exit("redis-server is not installed: pass --redis URL or run scripts/system-deps.sh")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="digest-redis-")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir, "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {port}")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


# -- check ----------------------------------------------------------------------------------
def load(path: str) -> dict[tuple[str, str], dict]:
    with open(path) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return {(r["dataset"], r["backend"]): r for r in rows}


def compare(recorded: dict[tuple[str, str], dict], current: list[dict]) -> bool:
    """Print a same/different table; True when every run matches its recording."""
    ok = True
    print(f"{'dataset':<15} {'backend':<13} {'result':<10} {'partition (recorded -> now)':<30} differing")
    for row in current:
        key = (row["dataset"], row["backend"])
        old = recorded.get(key)
        if old is None:
            ok = False
            print(f"{key[0]:<15} {key[1]:<13} {'unrecorded':<10}")
            continue
        diff = [k for k in COMPARED if old.get(k) != row.get(k)]
        ok = ok and not diff
        verdict = "same" if not diff else ("INPUT" if "input" in diff else "DIFFERENT")
        part = f"{old['partition'][:12]} -> {row['partition'][:12]}"
        detail = ", ".join(f"{k} {old.get(k)}->{row.get(k)}" if k in ("articles", "stories", "errors") else k
                           for k in diff)
        print(f"{key[0]:<15} {key[1]:<13} {verdict:<10} {part:<30} {detail}")
    return ok


# -- main -----------------------------------------------------------------------------------
def csv_list(choices: list[str]) -> Callable[[str], list[str]]:
    def parse(raw: str) -> list[str]:
        names = [n.strip() for n in raw.split(",") if n.strip()]
        bad = [n for n in names if n not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)} (choose from {', '.join(choices)})")
        return names
    return parse


def setting(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition("=")
    names = {f.name for f in Settings.declared()}
    if not sep or name not in names:
        raise argparse.ArgumentTypeError(f"expected name=value with a Settings field name, got {raw!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Datasets: " + ", ".join(DATASETS) + ". Backends: " + ", ".join(BACKENDS) + ".")
    ap.add_argument("--datasets", type=csv_list(DATASETS), help="comma-separated (default: all, or those in --check)")
    ap.add_argument("--backends", type=csv_list(BACKENDS), help="comma-separated (default: all, or those in --check)")
    ap.add_argument("--redis", metavar="URL", help="a Redis to use (default: start one of our own)")
    ap.add_argument("--data", type=Path, default=DATA, help=f"labelled data folder (default: {DATA})")
    ap.add_argument("--out", metavar="FILE", help="also write the JSON lines here")
    ap.add_argument("--check", metavar="FILE", help="compare with recorded digests; exit 1 on any difference")
    ap.add_argument("--set", dest="overrides", type=setting, action="append", default=[], metavar="NAME=VALUE",
                    help="override a setting (repeatable), e.g. --set min_cosine=0.3")
    args = ap.parse_args(argv)

    recorded = load(args.check) if args.check else {}
    if recorded and not args.datasets and not args.backends:
        plan = list(recorded)
    else:
        datasets = args.datasets or list(dict.fromkeys(d for d, _ in recorded)) or DATASETS
        backends = args.backends or list(dict.fromkeys(b for _, b in recorded)) or BACKENDS
        plan = [(d, b) for d in datasets for b in backends]
    overrides = dict(args.overrides)
    try:
        make_settings("memory", overrides)  # a bad value fails here, before any run
    except ValueError as exc:
        ap.error(str(exc))

    import dedup

    print(f"measuring dedup from {Path(dedup.__file__).resolve().parent} ({code_version()})", file=sys.stderr)
    rows: list[dict] = []
    out = open(args.out, "w") if args.out else None
    with contextlib.ExitStack() as stack:
        url = args.redis
        if url is None and any(b != "memory" for _, b in plan):
            url = stack.enter_context(own_redis())
        for dataset, backend in plan:
            row = run_one(dataset, backend, args.data, url, overrides)
            rows.append(row)
            line = json.dumps(row)
            print(line, flush=True)
            if out:
                out.write(line + "\n")
                out.flush()
            if row["views_agree"] is False:
                print(f"warning: {dataset} {backend}: story listing and story_of disagree", file=sys.stderr)
    if out:
        out.close()

    parts: dict[str, set[str]] = {}
    for row in rows:
        parts.setdefault(row["dataset"], set()).add(row["partition"])
    for dataset, found in parts.items():
        if len(found) > 1:
            print(f"note: {dataset}: the backends disagree on the partition", file=sys.stderr)
    if args.check:
        return 0 if compare(recorded, rows) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
