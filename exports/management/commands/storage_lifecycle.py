"""storage_lifecycle [--dry-run | --summary]: move stored objects to colder storage tiers by age.

``hot`` → ``warm`` → ``cold`` after ``DOSSIER_STORAGE_TIERS`` days (docs/storage-tiers-and-fixity.md): on S3 a
storage class of the same key, on the filesystem a root per tier. Every copy is checked against the object's
``stored_sha256`` before the row follows it. ``--dry-run`` prints what would move and changes nothing;
``--summary`` prints objects' bytes per tier. Scheduled daily. Exit codes: 0 done, 1 error (a move that failed its
check, storage unavailable, another run in progress).
"""

from __future__ import annotations

from django.core.management.base import CommandError

from config.commands import EXIT_ERROR, DossierCommand
from exports.services.storage_tiers import (
    FAILED,
    MOVED,
    SKIPPED,
    UNRECORDED,
    LifecycleBusy,
    LifecycleReport,
    TierMove,
    storage_lifecycle_recorded,
    stored_bytes_per_tier,
)


class Command(DossierCommand):
    help = "Move stored objects to colder storage tiers by age. Exit 0 done, 1 error."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--dry-run", action="store_true", help="print what would move; change nothing")
        group.add_argument("--summary", action="store_true", help="print bytes per tier; change nothing")

    def handle(self, *args, dry_run=False, summary=False, **options):
        if summary:
            self.print_summary()
            return
        try:
            report = storage_lifecycle_recorded(dry_run=dry_run, progress=self.progress)
        except LifecycleBusy as exc:
            raise CommandError(str(exc), returncode=EXIT_ERROR) from exc
        self.report(report)
        if report.failures:
            raise CommandError(f"{len(report.failures)} object(s) could not be moved", returncode=EXIT_ERROR)

    def progress(self, index: int, total: int, move: TierMove, outcome: str) -> None:
        if self.stderr.isatty():
            self.stderr.write(f"\r\033[K{index}/{total} {move.kind} {move.pk} → {move.to_tier}: {outcome}", ending="")
            if index == total:
                self.stderr.write("")

    def report(self, report: LifecycleReport) -> None:
        prefix = "dry run, nothing changed: " if report.dry_run else ""
        for (kind, source, target), count in sorted(report.per_move().items()):
            verb = "would move" if report.dry_run else "due"
            self.stdout.write(f"  {kind}: {count} {verb} {source} → {target}")
        for move, reason in report.failures:
            self.stdout.write(f"  FAILED {move.kind} {move.pk} ({move.name}): {reason}")
        outcomes = report.outcomes
        parts = [
            f"{label} {outcomes[key]}"
            for key, label in (
                (MOVED, "moved"),
                (SKIPPED, "changed meanwhile"),
                (UNRECORDED, "without stored digest"),
                (FAILED, "failed"),
            )
            if outcomes.get(key)
        ]
        self.stdout.write(f"{prefix}{len(report.planned)} object(s) due" + (": " + ", ".join(parts) if parts else ""))
        if outcomes.get(UNRECORDED):
            self.stdout.write("  objects without a stored digest stay: run verify_artifacts --record-missing first")

    def print_summary(self) -> None:
        for tier, kinds in sorted(stored_bytes_per_tier().items()):
            shown = ", ".join(f"{kind} {size} bytes" for kind, size in sorted(kinds.items()))
            self.stdout.write(f"{tier}: {shown}")
