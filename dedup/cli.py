"""The ``dedup`` command line: parse arguments, call :class:`~dedup.service.Deduper`, format results.

Every setting is a flag and a ``DEDUP_*`` environment variable, generated
from :class:`~dedup.settings.Settings`; the output formats are documented in
docs/output.md with JSON Schemas in docs/schemas/.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TextIO

import click

from .console import progress, run_batch, say, show_progress
from .evaluate import evaluate, novelty_scores, pair_report, read_novelty_gold
from .readers import read_labels, read_pairs, read_paths
from .records import BadInput, DedupError, RankedVariant, Story
from .service import Deduper, Outcome
from .settings import Settings
from .streams import article_json, cluster_slot_problem, connect, enqueue as xadd_all
from .urls import mask_url
from .worker import WorkerSettings, run_worker, worker_options

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# help sections, in the order --help prints them
OPTIONS = "Options"
CLUSTERING = "Clustering settings"
SHARED = "Shared index (Redis)"
SECTIONS = (OPTIONS, CLUSTERING, SHARED)
# settings that only tune the Redis index; every one says "Shared (Redis) index only"
REDIS_GROUPS = {"redis"}
# what each kind of command reads of the clustering settings (the fingerprint groups open an index)
ALL_GROUPS = ("signature", "clustering", "ranking", "runtime", "input")
FORMATS = ("table", "json", "jsonl", "csv")
# one article row of jsonl and csv output, in order (docs/schemas/article.json)
ROW_FIELDS = ("id", "cluster", "event", "action", "story_size", "rank", "most_complete", "unique_information", "coverage",
              "unique_sentences", "title", "source", "published")
LIST_SEPARATOR = " | "  # joins a list in one CSV cell


class SectionOption(click.Option):
    """An option that --help lists under a section of its own (clustering settings, shared index)."""

    def __init__(self, *args: Any, section: str = OPTIONS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.section = section


class SectionedCommand(click.Command):
    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: dict[str, list[tuple[str, str]]] = {s: [] for s in SECTIONS}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record:
                rows[getattr(param, "section", OPTIONS)].append(record)
        for title in SECTIONS:
            if rows[title]:
                with formatter.section(title):
                    formatter.write_dl(rows[title])


class DedupGroup(click.Group):
    command_class = SectionedCommand


class InputError(click.ClickException):
    """Input the command cannot work on at all (not one bad item of a batch): one line, exit 2."""

    exit_code = 2


def settings_options(*groups: str) -> Callable[[Callable], Callable]:
    """Options for the Settings fields of ``groups``, the shared-index tuning settings, --redis and --namespace.

    Settings a command does not list still come from their ``DEDUP_*`` variables.
    """
    def add(fn: Callable) -> Callable:
        for f in reversed(Settings.declared()):
            group = f.metadata["group"]
            if group not in REDIS_GROUPS and group not in groups:
                continue
            flag = "--" + f.name.replace("_", "-")
            kind: dict[str, Any] = (
                {"param_decls": [f"{flag}/--no-{flag[2:]}"]} if isinstance(f.default, bool)
                else {"param_decls": [flag], "type": type(f.default)}
            )
            fn = click.option(
                *kind.pop("param_decls"), f.name, cls=SectionOption,
                section=SHARED if group in REDIS_GROUPS else CLUSTERING,
                default=None, envvar=Settings.env_name(f.name), show_envvar=True,
                help=f"{f.metadata['help']} [default: {f.default}]", **kind,
            )(fn)
        fn = click.option(
            "--namespace", default="dedup", envvar="DEDUP_NAMESPACE", show_envvar=True, show_default=True,
            cls=SectionOption, section=SHARED,
            help="Key prefix of the shared index; several indexes can live in one Redis.",
        )(fn)
        fn = click.option(
            "--redis", "redis_url", default=None, envvar="DEDUP_REDIS_URL", show_envvar=True,
            cls=SectionOption, section=SHARED,
            help="Use the shared Redis index at this URL (redis://, rediss://, unix://, or redis+cluster://host:port "
                 "for a Redis Cluster) instead of an in-process one.",
        )(fn)
        return fn
    return add


def output_options(fn: Callable) -> Callable:
    """--format and -o/--output, the same on every command that prints results."""
    fn = click.option("-o", "--output", "output", type=click.Path(dir_okay=False, writable=True), default=None,
                      help="Write the results to FILE instead of standard output.")(fn)
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
        envvar="DEDUP_FORMAT", show_envvar=True, help="Output format (fields: docs/output.md).",
    )(fn)


def progress_option(fn: Callable) -> Callable:
    return click.option("--progress/--no-progress", default=None, envvar="DEDUP_PROGRESS", show_envvar=True,
                        help="Progress bars on stderr [default: when stderr is a terminal].")(fn)


def _settings(kwargs: dict[str, Any]) -> Settings:
    names = {f.name for f in Settings.declared()}
    try:
        return Settings.from_env(**{k: v for k, v in kwargs.items() if k in names})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def _open(kwargs: dict[str, Any]) -> Deduper:
    try:
        return Deduper(_settings(kwargs), url=kwargs.get("redis_url"), namespace=kwargs.get("namespace", "dedup"))
    except ImportError as exc:
        raise click.ClickException(f"--redis needs the Redis index: {exc}") from exc
    except ValueError as exc:  # a setting that does not apply here, or a bad URL scheme
        raise click.UsageError(str(exc)) from exc
    except Exception as exc:  # connection problems name the URL
        if kwargs.get("redis_url"):

            raise click.ClickException(f"cannot open the index at {mask_url(kwargs['redis_url'])}: {exc}") from exc
        raise


def _shared(kwargs: dict[str, Any], command: str) -> Deduper:
    if not kwargs.get("redis_url"):
        raise click.UsageError(f"{command} works on a shared index: pass --redis URL (or set DEDUP_REDIS_URL)")
    return _open(kwargs)


@contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    """Standard output, or FILE opened before any work so a bad path fails at once."""
    if path in (None, "-"):
        yield sys.stdout
        return
    try:
        fh = open(path, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc} (check the -o/--output path)") from None
    with fh:
        yield fh


# -- output -------------------------------------------------------------------
def variant_dict(story: Story, v: RankedVariant) -> dict[str, Any]:
    d = dataclasses.asdict(v)
    if story.size == 1:  # nothing to compare with: no sentence is "unique" to it
        d["unique_sentences"] = []
    return d


def story_dict(story: Story, event: str) -> dict[str, Any]:
    return {"id": story.id, "event": event, "size": story.size, "headline": story.headline, "sources": story.sources,
            "first_published": story.first_published, "last_published": story.last_published,
            "articles": [variant_dict(story, v) for v in story.articles]}


def article_row(story: Story, v: RankedVariant, action: str | None, event: str) -> dict[str, Any]:
    d = variant_dict(story, v)
    row = {"id": v.id, "cluster": story.id, "event": event, "action": action, "story_size": story.size}
    row.update((k, d[k]) for k in ROW_FIELDS if k not in row)
    return row


def csv_cell(value: Any) -> Any:
    if isinstance(value, list):
        return LIST_SEPARATOR.join(str(x) for x in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def write_records(fmt: str, out: TextIO, rows: Iterable[dict[str, Any]], fields: Iterable[str], show: bool,
                  total: int) -> None:
    """One JSON object per line, or CSV with a header, of ``rows``."""
    fields = list(fields)
    if fmt == "csv":
        w = csv.writer(out)
        w.writerow(fields)
    for row in progress(rows, "writing", show, total=total):
        if fmt == "csv":
            w.writerow([csv_cell(row[k]) for k in fields])
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def emit_stories(fmt: str, out: TextIO, stories: list[Story], events: dict[str, str], show: bool,
                 order: list[tuple[str, str, str | None]] | None = None, errors: Iterable[BadInput] = ()) -> None:
    """Stories in any format, each with its event (``events``: story id -> event id); ``order`` gives the
    article rows of jsonl/csv as (article, story, action)."""
    if fmt == "table":
        out.write(render_table(stories, events))
    elif fmt == "json":
        grouped: dict[str, list[str]] = {}
        for s in stories:
            grouped.setdefault(events[s.id], []).append(s.id)
        doc = {"stories": [story_dict(s, events[s.id]) for s in progress(stories, "writing", show, unit="story")],
               "events": [{"id": e, "stories": sorted(ids)} for e, ids in sorted(grouped.items())],
               "errors": [{"where": e.where, "reason": e.reason} for e in errors]}
        out.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    else:
        by_id = {s.id: s for s in stories}
        variant = {(s.id, v.id): v for s in stories for v in s.articles}
        if order is None:
            order = [(v.id, s.id, None) for s in stories for v in s.articles]
        rows = (article_row(by_id[sid], variant[(sid, aid)], action, events[sid]) for aid, sid, action in order
                if (sid, aid) in variant)
        write_records(fmt, out, rows, ROW_FIELDS, show, total=len(order))


def render_table(stories: list[Story], events: dict[str, str]) -> str:
    """Human-readable stories: largest first, variants ranked, unique sentences listed, and the other
    stories of the same event (related coverage) named under each."""
    lines: list[str] = []
    by_event: dict[str, list[Story]] = {}
    for st in stories:
        by_event.setdefault(events[st.id], []).append(st)
    for st in sorted(stories, key=lambda s: (-s.size, s.id)):
        src = f"; {', '.join(st.sources)}" if st.sources else ""
        lines.append(f"STORY {st.id}  ({st.size} article{'s' if st.size != 1 else ''}{src})")
        lines.append(f"  {st.headline}")
        related = [o for o in by_event[events[st.id]] if o.id != st.id]
        for o in sorted(related, key=lambda o: (-o.size, o.id)):
            lines.append(f"  related coverage (same event): {o.id} ({o.size} article{'s' if o.size != 1 else ''})"
                         f"  {o.headline}")
        for v in st.articles:
            mark = "  * most complete" if v.most_complete else ""
            lines.append(f"  {v.rank}. {v.id}  unique information {v.unique_information:.1f}, "
                         f"covers {v.coverage:.0%} of the story{mark}")
            for s in variant_dict(st, v)["unique_sentences"]:
                lines.append(f"       + {s}")
        lines.append("")
    return "\n".join(lines)


def rank_stories(dd: Deduper, story_ids: Iterable[str], show: bool) -> list[Story]:
    """The ranked stories of ``story_ids`` (ranking reads every member's sentences)."""
    story_ids = list(dict.fromkeys(story_ids))
    ranked = (dd.story(sid) for sid in story_ids)
    return [s for s in progress(ranked, "ranking", show, total=len(story_ids), unit="story") if s is not None]


# -- commands -----------------------------------------------------------------
@click.group(cls=DedupGroup, context_settings=CONTEXT)
@click.version_option(package_name="dedup")
def cli() -> None:
    """Cluster news articles into stories and show what each rewrite adds.

    \b
    Example:
      dedup cluster seeds/
    """


@cli.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True)
@output_options
@click.option("--skip-bad", is_flag=True, envvar="DEDUP_SKIP_BAD", help="Exit 0 even when some items were rejected.")
@progress_option
@click.option("--serve", is_flag=True, help="Then browse the batch in the dashboard (see `dedup serve`).")
@click.option("--host", default="127.0.0.1", envvar="DEDUP_HOST", show_envvar=True, show_default=True,
              help="With --serve: the address the dashboard listens on (0.0.0.0: every interface).")
@click.option("--port", default=8000, envvar="DEDUP_PORT", show_envvar=True, show_default=True,
              help="With --serve: the dashboard's port.")
@settings_options(*ALL_GROUPS)
def cluster(paths: tuple[str, ...], fmt: str, output: str | None, skip_bad: bool, progress: bool | None,
            serve: bool, host: str, port: int, **kwargs: Any) -> None:
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
      dedup cluster --format jsonl articles.jsonl -o assignments.jsonl
      cat feed.jsonl | dedup cluster --format json -
      dedup cluster --serve --port 8080 seeds/
    """
    show = show_progress(progress)
    with _output(output) as out, _open(kwargs) as dd:
        outcomes = run_batch(dd, read_paths(paths), show)
        errors = [o.error for o in outcomes if o.error is not None]
        done = [o.assignment for o in outcomes if o.assignment is not None]
        story_of = dd.stories_of([a.article_id for a in done])
        order = [(a.article_id, story_of[a.article_id], a.action) for a in done if a.article_id in story_of]
        stories = rank_stories(dd, (sid for _, sid, _ in order), show)
        emit_stories(fmt, out, stories, dd.events(s.id for s in stories), show, order, errors)
        if serve:
            from .web.serve import run as serve_dashboard

            out.flush()
            serve_dashboard(dd, host, port, os.environ.get("DEDUP_ADMIN_TOKEN") or None)
    if errors and not skip_bad:
        click.echo(f"{len(errors)} item(s) rejected; use --skip-bad to exit 0 anyway", err=True)
        sys.exit(1)


@cli.command("eval", context_settings=CONTEXT)
@click.argument("gold")
@click.argument("extra", nargs=-1)
@click.option("--pairs", "pairs_path", default=None, envvar="DEDUP_PAIRS", show_envvar=True,
              help="JSONL of labelled pairs (id1, id2, overall): report merges by score.")
@click.option("--novelty", "novelty_path", default=None,
              help="Novelty gold JSON (unique sentences per article, footers): rank every story and score it.")
@click.option("--level", type=click.Choice(["story", "event"]), default="story", show_default=True,
              help="Score the stories (rewrites of one copy) or the events (all coverage of one news event).")
@click.option("-o", "--output", "output", default=None, help="Write the scores to FILE instead of standard output.")
@progress_option
@settings_options(*ALL_GROUPS)
def eval_cmd(gold: str, extra: tuple[str, ...], pairs_path: str | None, novelty_path: str | None, level: str,
             output: str | None, progress: bool | None, **kwargs: Any) -> None:
    """Cluster a labelled JSONL file and print quality scores as JSON.

    The gold file's "cluster" field is the label; it is read only for
    scoring, against the stories or, with --level event, the events.
    EXTRA files are clustered in the same run as background traffic (their
    unlabelled articles are not scored).  A gold file without
    "cluster" labels needs --pairs, and is then scored by its pairs only.
    Unreadable or malformed gold, extra or pairs files stop before
    clustering with the file and line, exit status 2.

    \b
    Examples:
      dedup eval ../shared/data/meter-dev.jsonl
      dedup eval --level event ../shared/data/meter-dev.jsonl
      dedup eval ../shared/data/meter-dev.jsonl ../shared/data/bbc-distractors.jsonl
      dedup eval ../shared/data/semeval-dev-articles.jsonl --pairs ../shared/data/semeval-dev-pairs.jsonl
      dedup eval --novelty ../shared/data/novelty-dev-gold.json ../shared/data/novelty-dev.jsonl
    """
    try:
        labels = read_labels(gold)
        if not labels:
            raise BadInput(gold, "holds no articles", "eval needs a JSONL file of labelled articles")
        labelled = any(v is not None for v in labels.values())
        if not labelled and not pairs_path and not novelty_path:
            raise BadInput(gold, "no article has a 'cluster' field, the gold story label eval scores against",
                           "label the articles, pass --pairs FILE, or use `dedup cluster` for unlabelled ones")
        for path in extra:
            for k, v in read_labels(path).items():
                labels.setdefault(k, v)
        pairs = read_pairs(pairs_path) if pairs_path else None
        novelty = read_novelty_gold(novelty_path) if novelty_path else None
    except BadInput as exc:
        raise InputError(str(exc)) from None
    with _output(output) as out, _open(kwargs) as dd:
        start = time.perf_counter()
        outcomes = run_batch(dd, read_paths([gold, *extra]), show_progress(progress))
        seconds = time.perf_counter() - start
        ids = [o.assignment.article_id for o in outcomes if o.assignment is not None]
        story_of = dd.stories_of(ids)
        group_of = story_of
        if level == "event":
            event = dd.events(story_of.values())
            group_of = {a: event[s] for a, s in story_of.items()}
        # gold without story labels is scored by its pairs alone: no clustering scores over nothing
        result: dict[str, Any] = {"level": level}
        result.update(evaluate(labels, group_of) if labelled else {"articles": 0})
        result["rejected"] = sum(1 for o in outcomes if o.error is not None)
        result["articles_per_second"] = round(len(ids) / seconds, 1) if seconds else None
        if pairs is not None:
            result["pairs"] = pair_report(pairs, group_of)
        if novelty is not None:
            ranked = rank_stories(dd, sorted(set(story_of.values())), show_progress(progress))
            result["novelty"] = novelty_scores(novelty, ranked)
        out.write(json.dumps(result, indent=2) + "\n")


@cli.command(context_settings=CONTEXT)
@click.argument("article_ids", nargs=-1, required=True)
@output_options
@settings_options("signature", "clustering")
def delete(article_ids: tuple[str, ...], fmt: str, output: str | None, **kwargs: Any) -> None:
    """Remove articles (a kill or retraction) from the shared index and re-rank their stories.

    Prints, per article deleted, the stories its old story became (none when
    it was alone).  Exits 1 when some id was not in the index.

    \b
    Examples:
      dedup delete --redis redis://localhost:6379/0 ap-2020-0121-nato
      dedup delete --redis redis://localhost:6379/0 --format jsonl a1 a2 -o deleted.jsonl
    """
    rows, errors = [], []
    with _output(output) as out, _shared(kwargs, "delete") as dd:
        for aid in article_ids:
            try:
                rows.append({"id": aid, "stories": dd.delete(aid)})
            except KeyError:
                errors.append(BadInput(aid, "not in the index"))
                say(f"error: article {aid!r} is not in the index")
        if fmt == "table":
            for r in rows:
                now = ", ".join(r["stories"]) if r["stories"] else "no story (it was the only article)"
                out.write(f"deleted {r['id']}; its story is now {now}\n")
        elif fmt == "json":
            doc = {"deleted": rows, "errors": [{"where": e.where, "reason": e.reason} for e in errors]}
            out.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        else:
            write_records(fmt, out, rows, ("id", "stories"), False, total=len(rows))
    if errors:
        sys.exit(1)


@cli.command(context_settings=CONTEXT)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="List at most this many.")
@click.option("--min-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Only stories of at least this many articles.")
@click.option("--sort", type=click.Choice(["size", "recent"]), default="size", show_default=True,
              help="Largest first, or latest published article first.")
@output_options
@progress_option
@settings_options("signature", "ranking")
def stories(limit: int, min_size: int, sort: str, fmt: str, output: str | None, progress: bool | None,
            **kwargs: Any) -> None:
    """List the stories of the shared index, each with its ranked articles.

    --sort recent ranks every story of at least --min-size articles to find
    the latest; --sort size ranks only the stories it lists.

    \b
    Examples:
      dedup stories --redis redis://localhost:6379/0
      dedup stories --redis redis://localhost:6379/0 --min-size 2 --sort recent --limit 5 --format jsonl
    """
    show = show_progress(progress)
    with _output(output) as out, _shared(kwargs, "stories") as dd:
        sizes = {sid: n for sid, n in dd.story_sizes().items() if n >= min_size}
        if sort == "size":
            listed = rank_stories(dd, sorted(sizes, key=lambda s: (-sizes[s], s))[:limit], show)
        else:
            ranked = rank_stories(dd, sorted(sizes), show)
            listed = sorted(ranked, key=lambda s: (s.last_published, s.id), reverse=True)[:limit]
        emit_stories(fmt, out, listed, dd.events(s.id for s in listed), show)


@cli.command(context_settings=CONTEXT)
@click.argument("id_", metavar="ID")
@output_options
@settings_options("signature", "ranking")
def show(id_: str, fmt: str, output: str | None, **kwargs: Any) -> None:
    """Show a story of the shared index, given its id or the id of one of its articles.

    \b
    Examples:
      dedup show --redis redis://localhost:6379/0 ap-2020-0121-nato
      dedup show --redis redis://localhost:6379/0 --format json 0f3a9c
    """
    with _output(output) as out, _shared(kwargs, "show") as dd:
        story = dd.story(id_)
        if story is None:
            sid = dd.story_of(id_)
            story = dd.story(sid) if sid is not None else None
        if story is None:
            raise click.ClickException(f"{id_!r} is neither a story nor an article in the index "
                                       "(list them with `dedup stories`)")
        emit_stories(fmt, out, [story], dd.events([story.id]), False)


@cli.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1)
@click.option("--host", default="127.0.0.1", envvar="DEDUP_HOST", show_envvar=True, show_default=True,
              help="Address to listen on (0.0.0.0: every interface, as in a container).")
@click.option("--port", default=8000, envvar="DEDUP_PORT", show_envvar=True, show_default=True)
@click.option("--admin-token", default=None, envvar="DEDUP_ADMIN_TOKEN", show_envvar=True,
              help="Enables POST/DELETE /api/articles for holders of this token; read-only without it.")
@progress_option
@settings_options(*ALL_GROUPS)
def serve(paths: tuple[str, ...], host: str, port: int, admin_token: str | None, progress: bool | None,
          **kwargs: Any) -> None:
    """Serve the dashboard (story list, story pages, JSON API) over the index, after loading PATHS if given.

    \b
    Examples:
      dedup serve --redis redis://localhost:6379/0 --port 8000
      dedup serve --admin-token s3cret seeds/
    """
    from .web.serve import serve_command

    with _open(kwargs) as dd:
        serve_command(dd, paths, host, port, admin_token, progress)


@cli.command(context_settings=CONTEXT)
@click.option("--yes", is_flag=True, help="Confirm: delete every article, story and bucket of the namespace.")
@settings_options("signature")
def drop(yes: bool, **kwargs: Any) -> None:
    """Delete a whole namespace of the shared index (all its keys, in either layout).

    Other namespaces in the same Redis are left alone.  Without --yes
    nothing is deleted.

    \b
    Examples:
      dedup drop --redis redis://localhost:6379/0 --namespace trial --yes
    """
    if not yes:
        raise click.UsageError(f"drop deletes every key of namespace {kwargs.get('namespace', 'dedup')!r}: "
                               "add --yes to confirm")
    with _shared(kwargs, "drop") as dd:
        n = dd.drop()
    say(f"dropped namespace {kwargs.get('namespace', 'dedup')!r}: {n} key(s) deleted")


@cli.command("settings", context_settings=CONTEXT)
@click.option("--markdown", is_flag=True, help="Print the settings table for the README.")
@settings_options(*ALL_GROUPS)
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
@settings_options(*ALL_GROUPS)
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
    problem = cluster_slot_problem(url, ws.stream_keys())
    if problem:
        raise click.UsageError(problem)
    sys.exit(run_worker(_open(kwargs), url, ws, burst=burst))


def main() -> None:
    try:
        cli(prog_name="dedup")
    except DedupError as exc:  # raised mid-command (a full or unreachable server): its message names the fix
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
