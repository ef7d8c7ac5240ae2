"""How the quality figures move when each threshold moves by +-20%.

Runs the product itself (``Deduper`` in process, then ``Deduper.events``) on the labelled data in
``../shared/data/`` (read at run time, never copied) once with the defaults and once per threshold at
0.8x and 1.2x its default (an integer that 20% does not move, by one), and prints one table row per run:

* meter-dev: story pairwise precision, event pairwise F1 and ARI (METER's labels are the event level);
* meter-dev + bbc-distractors: BBC articles put in a story or an event with a METER article;
* semeval-dev: pairs judged different (overall >= 3.5) in one story / in one event, and pairs judged the
  same event (overall <= 1.5) in one event.

Usage:  python bench/sensitivity.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dedup.evaluate import evaluate  # noqa: E402
from dedup.readers import read_labels, read_paths  # noqa: E402
from dedup.service import Deduper  # noqa: E402
from dedup.settings import Settings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
THRESHOLDS = ("min_cosine", "min_reuse", "event_min_cosine", "event_min_names", "window_days", "template_gap")


def cluster(settings: Settings, paths: list[Path]) -> tuple[dict[str, str], dict[str, str]]:
    """story_of and event_of of every article of ``paths``, clustered in one run."""
    dd = Deduper(settings)
    outcomes = list(dd.add_many(read_paths([str(p) for p in paths], notice=lambda _: None)))
    story_of = dd.stories_of([o.assignment.article_id for o in outcomes if o.assignment is not None])
    event = dd.events()
    return story_of, {a: event[s] for a, s in story_of.items()}


def together(pairs: list[dict], group_of: dict[str, str], lo: float, hi: float) -> tuple[int, int]:
    chosen = [p for p in pairs if lo <= p["overall"] <= hi]
    same = sum(1 for p in chosen if group_of.get(str(p["id1"])) is not None
               and group_of.get(str(p["id1"])) == group_of.get(str(p["id2"])))
    return same, len(chosen)


def measure(settings: Settings) -> dict[str, object]:
    meter = DATA / "meter-dev.jsonl"
    labels = read_labels(str(meter))
    story_of, event_of = cluster(settings, [meter])
    story = evaluate(labels, story_of)
    event = evaluate(labels, event_of)
    bbc_ids = set(read_labels(str(DATA / "bbc-distractors.jsonl")))
    story_all, event_all = cluster(settings, [meter, DATA / "bbc-distractors.jsonl"])

    def foreign(group_of: dict[str, str]) -> int:
        meter_groups = {g for a, g in group_of.items() if a in labels}
        return sum(1 for a in bbc_ids if group_of.get(a) in meter_groups)

    pairs = [json.loads(line) for line in (DATA / "semeval-dev-pairs.jsonl").open(encoding="utf-8")]
    s_story, s_event = cluster(settings, [DATA / "semeval-dev-articles.jsonl"])
    far_story = together(pairs, s_story, 3.5, 5.0)
    far_event = together(pairs, s_event, 3.5, 5.0)
    close_event = together(pairs, s_event, 0.0, 1.5)
    return {
        "story P": story["pairwise_precision"], "event F1": event["pairwise_f1"], "event ARI": event["ari"],
        "bbc in METER story/event": f"{foreign(story_all)}/{foreign(event_all)}",
        "semeval >=3.5 story": f"{far_story[0]}/{far_story[1]}",
        "semeval >=3.5 event": f"{far_event[0]}/{far_event[1]}",
        "semeval <=1.5 event": f"{close_event[0]}/{close_event[1]} ({close_event[0] / close_event[1]:.1%})",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=THRESHOLDS, default=list(THRESHOLDS))
    args = ap.parse_args()
    base = Settings()
    runs: list[tuple[str, Settings]] = [("defaults", base)]
    for name in args.only:
        default = getattr(base, name)
        for factor, step in ((0.8, -1), (1.2, 1)):
            if isinstance(default, int):  # a small integer moves by one where 20% rounds back to it
                value = round(default * factor)
                value = default + step if value == default else value
            else:
                value = round(default * factor, 4)
            runs.append((f"{name} {value}", dataclasses.replace(base, **{name: value})))
    header = None
    for label, settings in runs:
        start = time.perf_counter()
        row = measure(settings)
        if header is None:
            header = ["run", *row, "s"]
            print("| " + " | ".join(header) + " |")
            print("| " + " | ".join("---" for _ in header) + " |")
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()]
        print(f"| {label} | " + " | ".join(cells) + f" | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
