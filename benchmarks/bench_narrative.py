"""Timeline rendering and redaction throughput on a 100,000-event execution.

Run from the repository root: ``python benchmarks/bench_narrative.py``. Prints the best of three timings of
render_for_approval against formatting the same timeline rows with plain f-strings (same UTC timestamps and
canonical JSON payloads, no escaping, no digests), the ratio with PASS/MISS against 0.3, and redaction throughput
over the rendered text. Always exits 0: it reports, CI decides.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exports.narratives import (  # noqa: E402
    EvidenceItem,
    EvidenceKind,
    ExecutionInfo,
    ExportMeta,
    NarrativeContext,
    TimelineEvent,
    render_for_approval,
)
from exports.redaction import Redactor  # noqa: E402
from textpolicy.utc import utc_iso_compact  # noqa: E402

EVENT_COUNT = 100_000
TARGET_RATIO = 0.3
EVENT_TYPES = (
    "step.recorded",
    "sample.measured",
    "override.applied",
    "coaching_note.added",
    "narrative_export.approval.stage_completed",
)
ACTORS = ("Ada Lovelace", "Grace Hopper", "Rosalind Franklin", "Marie Curie")


def synthetic_events(count: int) -> list[TimelineEvent]:
    rng = random.Random(20240101)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    events = []
    for sequence in range(1, count + 1):
        payload = {
            "step": rng.randint(1, 40),
            "field": rng.choice(("ph", "temp_c", "od600", "volume_ml")),
            "value": round(rng.uniform(0, 100), 3),
            "note": rng.choice(("ok", "within range", "operator: re-read <5s", "see [SOP-12]", "contact qa@lab.test")),
        }
        occurred_at = start + timedelta(seconds=sequence * 7, microseconds=rng.choice((0, 0, 250_000)))
        events.append(TimelineEvent(sequence, rng.choice(EVENT_TYPES), rng.choice(ACTORS), occurred_at, payload))
    return events


def synthetic_context(events: list[TimelineEvent]) -> NarrativeContext:
    created = datetime(2024, 3, 1, tzinfo=UTC)
    execution = ExecutionInfo(1, "Bench run", "bench", "Bench team", "pcr-v2", "completed", "Ada Lovelace", created)
    export = ExportMeta(1, 1, 1, "0" * 64, "Internal", "", "Ada Lovelace", created)
    evidence = [EvidenceItem(EvidenceKind.FILE, 1, "raw.csv", 10, "1" * 64, created)]
    return NarrativeContext(execution, events, evidence, export)


def plain_rows(events: list[TimelineEvent]) -> str:
    # The fastest honest baseline: one reusable encoder producing the same compact sorted JSON as the renderer.
    encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
    lines = []
    for event in events:
        payload = encode(event.payload)
        lines.append(
            f"| {event.sequence} | {utc_iso_compact(event.occurred_at)} | {event.event_type} | {event.actor_name} "
            f"| {payload} |"
        )
    return "\n".join(lines) + "\n"


def best_of(runs: int, work: Callable[[], object]) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> int:
    events = synthetic_events(EVENT_COUNT)
    ctx = synthetic_context(events)
    baseline = best_of(3, lambda: plain_rows(events))
    rendered_time = best_of(3, lambda: render_for_approval(ctx))
    ratio = baseline / rendered_time
    verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
    print(f"events: {EVENT_COUNT}")
    print(f"plain f-string rows:   {baseline:.3f} s")
    print(f"render_for_approval:   {rendered_time:.3f} s")
    print(f"speed ratio: {ratio:.2f} (target >= {TARGET_RATIO}) {verdict}")

    text = render_for_approval(ctx)
    megabytes = len(text.encode()) / 1_000_000
    redactor = Redactor()
    redaction_time = best_of(3, lambda: redactor.redact(text))
    result = redactor.redact(text)
    print(f"redaction: {megabytes:.1f} MB in {redaction_time:.3f} s = {megabytes / redaction_time:.1f} MB/s")
    print(f"redaction counts: {dict(result.counts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
