"""The ``dedup`` command line: parse arguments, call :class:`~dedup.service.Deduper`, format results.

Every clustering setting is a flag and a ``DEDUP_*`` environment variable,
generated from :class:`~dedup.settings.Settings`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

import click

from .evaluate import evaluate, pair_report
from .readers import read_labels, read_pairs, read_paths
from .records import Article, BadInput, Story
from .service import Deduper, Outcome
from .settings import Settings
from .worker import WorkerSettings, run_worker, worker_options

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def settings_options(fn: Callable) -> Callable:
    """Add one option per Settings field, plus --redis and --namespace."""
    for f in reversed(Settings.declared()):
        fn = click.option(
            "--" + f.name.replace("_", "-"),
            f.name,
            type=type(f.default),
            default=None,
            envvar=Settings.env_name(f.name),
            show_envvar=True,
            help=f"{f.metadata['help']} [default: {f.default}]",
        )(fn)
    fn = click.option(
        "--namespace",
        default="dedup",
        envvar="DEDUP_NAMESPACE",
        show_envvar=True,
        show_default=True,
        help="Key prefix of the shared index; several indexes can live in one Redis.",
    )(fn)
    fn = click.option(
        "--redis",
        "redis_url",
        default=None,
        envvar="DEDUP_REDIS_URL",
        show_envvar=True,
        help="Use the shared Redis index at this URL (redis://, rediss://, unix://, or redis+cluster://host:port "
             "for a Redis Cluster) instead of an in-process one.",
    )(fn)
    return fn


class InputError(click.ClickException):
    """Input the command cannot work on at all (not one bad item of a batch): one line, exit 2."""

    exit_code = 2


def _settings(kwargs: dict[str, Any]) -> Settings:
    try:
        return Settings.from_values(kwargs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def _open(kwargs: dict[str, Any]) -> Deduper:
    try:
        return Deduper(_settings(kwargs), url=kwargs.get("redis_url"), namespace=kwargs.get("namespace", "dedup"))
    except ImportError as exc:
        raise click.ClickException(f"--redis needs the Redis index: {exc}") from exc
    except Exception as exc:  # connection problems name the URL
        if kwargs.get("redis_url"):
            from .index import mask_url

            raise click.ClickException(f"cannot open the index at {mask_url(kwargs['redis_url'])}: {exc}") from exc
        raise


class Progress:
    """A one-line progress counter on stderr, shown only on a terminal or when asked."""

    def __init__(self, enabled: bool, stream: TextIO = sys.stderr) -> None:
        self.enabled = enabled
        self.stream = stream
        self.start = time.monotonic()
        self.last = 0.0
        self.n = 0

    def tick(self) -> None:
        self.n += 1
        now = time.monotonic()
        if self.enabled and now - self.last > 0.2:
            self.last = now
            rate = self.n / max(now - self.start, 1e-9)
            self.stream.write(f"\r{self.n:,} articles  {rate:,.0f}/s")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.n:
            rate = self.n / max(time.monotonic() - self.start, 1e-9)
            self.stream.write(f"\r{self.n:,} articles  {rate:,.0f}/s  done\n")
            self.stream.flush()


def run_batch(dd: Deduper, items: Iterable[Article | BadInput], progress: Progress) -> list[Outcome]:
    """Ingest everything, reporting bad items and warnings on stderr as they come."""
    outcomes = []
    for outcome in dd.add_many(items):
        progress.tick()
        if outcome.article is not None:
            for w in outcome.article.warnings:
                click.echo(f"warning: {w}", err=True)
        if outcome.error is not None:
            click.echo(f"error: {outcome.error}", err=True)
        outcomes.append(outcome)
    progress.done()
    return outcomes


def story_dict(story: Story) -> dict[str, Any]:
    d = dataclasses.asdict(story)
    d["size"] = story.size
    return d


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="dedup")
def cli() -> None:
    """Cluster news articles into stories and show what each rewrite adds.

    \b
    Example:
      dedup cluster seeds/
    """


@cli.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "jsonl", "csv"]), default="table", show_default=True,
    envvar="DEDUP_FORMAT", show_envvar=True, help="Output format.",
)
@click.option("--skip-bad", is_flag=True, envvar="DEDUP_SKIP_BAD", help="Exit 0 even when some items were rejected.")
@click.option("--progress/--no-progress", default=None, envvar="DEDUP_PROGRESS", show_envvar=True,
              help="Progress on stderr [default: when stderr is a terminal].")
@click.option("--serve", is_flag=True, help="Then browse the batch in the dashboard (see `dedup serve`; DEDUP_PORT, default 8000).")
@settings_options
def cluster(paths: tuple[str, ...], fmt: str, skip_bad: bool, progress: bool | None, serve: bool,
            **kwargs: Any) -> None:
    """Cluster articles from files, directories, JSON/JSONL or stdin (-) into stories.

    Directories are read recursively for .txt, .json, .jsonl and .ndjson
    files; other files are named on stderr as skipped.  A text file is one
    article, its id the path under the folder given without extension
    (mon/story.txt -> mon/story; a file named directly: its name).  JSON and
    JSONL items need an "id" and a "text" or "body".  Bad items (binary
    files too) are reported on stderr with file and line, and the rest of
    the batch goes on; an id seen twice is warned about, the later replacing
    the earlier.  Output fields: docs/output.md.

    \b
    Examples:
      dedup cluster seeds/
      dedup cluster --format jsonl articles.jsonl > assignments.jsonl
      cat feed.jsonl | dedup cluster --format json -
      dedup cluster --serve seeds/
    """
    with _open(kwargs) as dd:
        show = sys.stderr.isatty() if progress is None else progress
        outcomes = run_batch(dd, read_paths(paths), Progress(show))
        errors = [o for o in outcomes if o.error is not None]
        done = [o for o in outcomes if o.assignment is not None]
        story_of = dd.index.story_of([o.assignment.article_id for o in done])
        stories: dict[str, Story] = {}
        for sid in dict.fromkeys(story_of[o.assignment.article_id] for o in done if o.assignment.article_id in story_of):
            st = dd.story(sid)
            if st is not None:
                stories[sid] = st
        _emit(fmt, done, errors, story_of, stories, sys.stdout)
        if serve:
            from .web.serve import run as serve_dashboard

            sys.stdout.flush()
            serve_dashboard(dd, "127.0.0.1", int(os.environ.get("DEDUP_PORT", "8000")),
                            os.environ.get("DEDUP_ADMIN_TOKEN") or None)
    if errors and not skip_bad:
        click.echo(f"{len(errors)} item(s) rejected; use --skip-bad to exit 0 anyway", err=True)
        sys.exit(1)


def _emit(fmt: str, done: list[Outcome], errors: list[Outcome], story_of: dict[str, str],
          stories: dict[str, Story], out: TextIO) -> None:
    variant = {(sid, v.id): v for sid, st in stories.items() for v in st.articles}
    if fmt == "jsonl":
        for o in done:
            aid = o.assignment.article_id
            sid = story_of.get(aid, o.assignment.story)
            v = variant.get((sid, aid))
            row = {"id": aid, "cluster": sid, "action": o.assignment.action,
                   "story_size": stories[sid].size if sid in stories else 1,
                   "rank": v.rank if v else None,
                   "unique_sentences": v.unique_sentences if v else []}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "json":
        doc = {"stories": [story_dict(s) for s in stories.values()],
               "errors": [{"where": o.error.where, "reason": o.error.reason} for o in errors]}
        out.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    elif fmt == "csv":
        w = csv.writer(out)
        w.writerow(["id", "cluster", "rank", "story_size", "unique_sentences", "unique_information", "source", "title"])
        for o in done:
            aid = o.assignment.article_id
            sid = story_of.get(aid, o.assignment.story)
            v = variant.get((sid, aid))
            w.writerow([aid, sid, v.rank if v else "", stories[sid].size if sid in stories else 1,
                        len(v.unique_sentences) if v else 0, v.unique_information if v else 0,
                        v.source if v else "", v.title if v else ""])
    else:
        out.write(render_table(list(stories.values())))


def render_table(stories: list[Story]) -> str:
    """Human-readable stories: largest first, variants ranked, unique sentences listed."""
    lines: list[str] = []
    for st in sorted(stories, key=lambda s: (-s.size, s.id)):
        src = f"; {', '.join(st.sources)}" if st.sources else ""
        lines.append(f"STORY {st.id}  ({st.size} article{'s' if st.size != 1 else ''}{src})")
        lines.append(f"  {st.headline}")
        for v in st.articles:
            mark = "  * most complete" if v.most_complete else ""
            lines.append(f"  {v.rank}. {v.id}  unique information {v.unique_information:.1f}, "
                         f"covers {v.coverage:.0%} of the story{mark}")
            if st.size > 1:
                for s in v.unique_sentences:
                    lines.append(f"       + {s}")
        lines.append("")
    return "\n".join(lines)


@cli.command("eval", context_settings=CONTEXT)
@click.argument("gold")
@click.argument("extra", nargs=-1)
@click.option("--pairs", "pairs_path", default=None, envvar="DEDUP_PAIRS", show_envvar=True, help="JSONL of labelled pairs (id1, id2, overall): report merges by score.")
@settings_options
def eval_cmd(gold: str, extra: tuple[str, ...], pairs_path: str | None, **kwargs: Any) -> None:
    """Cluster a labelled JSONL file and print quality scores as JSON.

    The gold file's "cluster" field is the story label; it is read only for
    scoring.  EXTRA files are clustered in the same run as background
    traffic (their unlabelled articles are not scored).  A gold file without
    "cluster" labels needs --pairs, and is then scored by its pairs only.
    Unreadable or malformed gold, extra or pairs files stop before
    clustering with the file and line, exit status 2.

    \b
    Examples:
      dedup eval ../shared/data/meter-dev.jsonl
      dedup eval ../shared/data/meter-dev.jsonl ../shared/data/bbc-distractors.jsonl
      dedup eval ../shared/data/semeval-dev-articles.jsonl --pairs ../shared/data/semeval-dev-pairs.jsonl
    """
    try:
        labels = read_labels(gold)
        if not labels:
            raise BadInput(gold, "holds no articles", "eval needs a JSONL file of labelled articles")
        labelled = any(v is not None for v in labels.values())
        if not labelled and not pairs_path:
            raise BadInput(gold, "no article has a 'cluster' field, the gold story label eval scores against",
                           "label the articles, pass --pairs FILE, or use `dedup cluster` for unlabelled ones")
        for path in extra:
            for k, v in read_labels(path).items():
                labels.setdefault(k, v)
        pairs = read_pairs(pairs_path) if pairs_path else None
    except BadInput as exc:
        raise InputError(str(exc)) from None
    with _open(kwargs) as dd:
        start = time.perf_counter()
        outcomes = run_batch(dd, read_paths([gold, *extra]), Progress(sys.stderr.isatty()))
        seconds = time.perf_counter() - start
        ids = [o.assignment.article_id for o in outcomes if o.assignment is not None]
        story_of = dd.index.story_of(ids)
    # gold without story labels is scored by its pairs alone: no clustering scores over nothing
    result: dict[str, Any] = evaluate(labels, story_of) if labelled else {"articles": 0}
    result["rejected"] = sum(1 for o in outcomes if o.error is not None)
    result["articles_per_second"] = round(len(ids) / seconds, 1) if seconds else None
    if pairs is not None:
        result["pairs"] = pair_report(pairs, story_of)
    click.echo(json.dumps(result, indent=2))


@cli.command(context_settings=CONTEXT)
@click.argument("article_ids", nargs=-1, required=True)
@settings_options
def delete(article_ids: tuple[str, ...], **kwargs: Any) -> None:
    """Remove articles (a kill or retraction) from the shared index and re-rank their stories.

    \b
    Example:
      dedup delete --redis redis://localhost:6379/0 ap-2020-0121-nato
    """
    if not kwargs.get("redis_url"):
        raise click.UsageError("delete works on a shared index: pass --redis URL (or set DEDUP_REDIS_URL)")
    missing = 0
    with _open(kwargs) as dd:
        for aid in article_ids:
            try:
                stories = dd.delete(aid)
            except KeyError:
                click.echo(f"error: article {aid!r} is not in the index", err=True)
                missing += 1
                continue
            click.echo(json.dumps({"deleted": aid, "stories": stories}))
    if missing:
        sys.exit(1)


@cli.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1)
@click.option("--host", default="127.0.0.1", envvar="DEDUP_HOST", show_envvar=True, show_default=True)
@click.option("--port", default=8000, envvar="DEDUP_PORT", show_envvar=True, show_default=True)
@click.option("--admin-token", default=None, envvar="DEDUP_ADMIN_TOKEN", show_envvar=True,
              help="Enables POST/DELETE /api/articles for holders of this token; read-only without it.")
@settings_options
def serve(paths: tuple[str, ...], host: str, port: int, admin_token: str | None, **kwargs: Any) -> None:
    """Serve the dashboard (story list, story pages, JSON API) over the index, after loading PATHS if given.

    \b
    Examples:
      dedup serve --redis redis://localhost:6379/0 --port 8000
      dedup serve --admin-token s3cret seeds/
    """
    from .web.serve import serve_command

    with _open(kwargs) as dd:
        serve_command(dd, paths, host, port, admin_token)


@cli.command("settings", context_settings=CONTEXT)
@click.option("--markdown", is_flag=True, help="Print the settings table for the README.")
@settings_options
def settings_cmd(markdown: bool, **kwargs: Any) -> None:
    """Show the effective settings (defaults, DEDUP_* variables and flags applied).

    \b
    Examples:
      dedup settings
      DEDUP_MIN_COSINE=0.3 dedup settings
      dedup settings --markdown
    """
    if markdown:
        click.echo(Settings.markdown_table())
        return
    click.echo(json.dumps(dataclasses.asdict(_settings(kwargs)), indent=2))


def _raw_item(bad: BadInput, files: dict[str, bytes]) -> bytes:
    """The original bytes of a rejected item, found again from its ``where`` (file:line, file[i], file)."""
    where = bad.where.split(" (id ", 1)[0]
    name, _, line = where.rpartition(":")
    if name in files and line.isdigit():
        lines = files[name].split(b"\n")
        n = int(line)
        return lines[n - 1] if 0 < n <= len(lines) else b""
    if where.endswith("]") and "[" in where:
        name, _, idx = where[:-1].rpartition("[")
        if name in files and idx.isdigit():
            try:
                obj = json.loads(files[name])
                items = obj["articles"] if isinstance(obj, dict) else obj
                return json.dumps(items[int(idx)], ensure_ascii=False).encode()
            except (ValueError, KeyError, IndexError, TypeError):
                return b""
    return files.get(where, b"")


@cli.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True)
@click.option("--include-bad", is_flag=True, envvar="DEDUP_INCLUDE_BAD",
              help="Enqueue rejected items raw too, so the worker dead-letters them where consumers can see them.")
@click.option("--redis", "redis_url", default=None, envvar="DEDUP_REDIS_URL", show_envvar=True,
              help="Redis holding the streams (when --streams-url is not given).")
@click.option("--streams-url", default=None, envvar=WorkerSettings.env_name("streams_url"), show_envvar=True,
              help="Redis holding the streams; defaults to --redis.")
@click.option("--input-stream", default=WorkerSettings.input_stream, envvar=WorkerSettings.env_name("input_stream"),
              show_envvar=True, show_default=True, help="Stream to push the articles onto.")
def enqueue(paths: tuple[str, ...], include_bad: bool, redis_url: str | None, streams_url: str | None,
            input_stream: str) -> None:
    """Push articles from files, directories, JSON/JSONL or stdin (-) onto the worker's input stream.

    Items are parsed as `dedup cluster` parses them; bad ones are reported on
    stderr with file and line and left out (unless --include-bad).  Exits 1
    when some items were bad.

    \b
    Examples:
      dedup enqueue --redis redis://localhost:6379/0 feed.jsonl
      cat feed.jsonl | dedup enqueue --redis redis://localhost:6379/0 -
    """
    from .streams import article_json, connect, enqueue as xadd_all

    url = streams_url or redis_url
    if not url:
        raise click.UsageError("enqueue needs a Redis: pass --redis URL or --streams-url URL (or DEDUP_REDIS_URL)")
    files: dict[str, bytes] = {}
    stdin = None
    if "-" in paths:
        files["<stdin>"] = sys.stdin.buffer.read()
        import io

        stdin = io.BytesIO(files["<stdin>"])
    bad = 0

    def payloads() -> Iterable[bytes]:
        nonlocal bad
        for item in read_paths(paths, stdin=stdin):
            if isinstance(item, BadInput):
                bad += 1
                click.echo(f"error: {item}", err=True)
                if include_bad:
                    where = item.where.split(" (id ", 1)[0]
                    for name in (where.rpartition(":")[0], where.rpartition("[")[0], where):
                        if name and name not in files:
                            try:
                                files[name] = Path(name).read_bytes()
                            except OSError:
                                continue
                    yield _raw_item(item, files)
                continue
            for w in item.warnings:
                click.echo(f"warning: {w}", err=True)
            yield article_json(item)

    client = connect(url)
    try:
        n = xadd_all(client, input_stream, payloads())
    except Exception as exc:  # connection problems name the URL
        raise click.ClickException(f"cannot enqueue to {url}: {exc}") from exc
    finally:
        client.close()
    click.echo(f"{n} message(s) added to {input_stream}" + (f"; {bad} bad item(s)" if bad else ""), err=True)
    if bad and not include_bad:
        sys.exit(1)


@cli.command("worker", context_settings=CONTEXT)
@click.option("--burst", is_flag=True, envvar="DEDUP_BURST", help="Process what is queued, then exit.")
@worker_options
@settings_options
def worker_command(burst: bool, **kwargs: Any) -> None:
    """Cluster articles from a Redis stream and publish each assignment on another.

    Run any number of workers with --redis (the shared index); one worker
    without --redis keeps its index in process (needs --streams-url).
    SIGTERM/SIGINT finishes the current batch and exits 0; a second one exits
    at once.  Stream formats: docs/worker.md.

    \b
    Examples:
      dedup worker --redis redis://localhost:6379/0
      dedup worker --redis redis://localhost:6379/0 --burst --with-rank
      python worker.py --redis redis://localhost:6379/0 --metrics-port 9100
      dedup worker --redis redis+cluster://node1:7000 --input-stream '{dedup}:in' \\
        --output-stream '{dedup}:out' --dead-stream '{dedup}:dead'
    """
    try:
        ws = WorkerSettings.from_values(kwargs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    url = ws.streams_url or kwargs.get("redis_url")
    if not url:
        raise click.UsageError("the worker needs Redis for its streams: pass --redis URL or --streams-url URL")
    from .streams import cluster_slot_problem

    problem = cluster_slot_problem(url, ws.stream_keys())
    if problem:
        raise click.UsageError(problem)
    sys.exit(run_worker(_open(kwargs), url, ws, burst=burst))


def main() -> None:
    cli(prog_name="dedup")


if __name__ == "__main__":
    main()
