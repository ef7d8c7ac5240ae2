"""What every command-line front end shares: progress bars on stderr and running a batch.

Used by the ``dedup`` commands and by ``dedup serve`` (dedup.web.serve), so
neither imports the other.
"""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm

from .records import Article, BadInput
from .service import Deduper, Outcome

T = TypeVar("T")


def show_progress(asked: bool | None) -> bool:
    """``--progress``/``--no-progress`` when given, else whether stderr is a terminal."""
    return sys.stderr.isatty() if asked is None else asked


def progress(items: Iterable[T], desc: str, enabled: bool, total: int | None = None, unit: str = "article"
             ) -> Iterator[T]:
    """``items`` with a bar on stderr (count, rate, and ETA when the total is known)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    yield from tqdm(items, desc=desc, total=total, unit=unit, disable=not enabled, file=sys.stderr,
                    dynamic_ncols=True, mininterval=0.2)


def say(message: str) -> None:
    """A line on stderr that does not tear a progress bar in two."""
    tqdm.write(message, file=sys.stderr)


def run_batch(dd: Deduper, items: Iterable[Article | BadInput], show: bool) -> list[Outcome]:
    """Sign and cluster everything, reporting bad items and warnings on stderr as they come."""
    items = list(items)  # read first, so the bar knows its total
    outcomes = []
    for outcome in progress(dd.add_many(items), "clustering", show, total=len(items)):
        if outcome.article is not None:
            for w in outcome.article.warnings:
                say(f"warning: {w}")
        if outcome.error is not None:
            say(f"error: {outcome.error}")
        outcomes.append(outcome)
    return outcomes
