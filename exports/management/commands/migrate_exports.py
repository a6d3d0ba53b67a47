"""migrate_exports [--dry-run]: pin the template snapshot that applied at creation on exports lacking one.

Anomalies (nothing applied then, drifted snapshot, ambiguous) are appended as JSON lines to
``<PROBLEMS_DIR>/governance_migration.log`` and those exports are left alone. ``--dry-run`` changes nothing
(and writes no log) and prints what a real run would do. Exit codes: 0 done (anomalies included), 1 error.
"""

from config.commands import DossierCommand, exclusive
from exports.services.snapshot_backfill import BackfillOutcome, exports_snapshot_backfill


class Command(DossierCommand):
    help = "Backfill template snapshots on exports that lack one; log anomalies. Exit 0 done, 1 error."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="print the impact and change nothing")

    def handle(self, *args, dry_run: bool = False, **options):
        with exclusive("migrate_exports"):
            report = exports_snapshot_backfill(dry_run=dry_run)
        if dry_run:
            self.stdout.write("dry run: nothing is changed")
        for outcome in report.outcomes:
            self.stdout.write(self._line(outcome, dry_run=dry_run))
        counts = ", ".join(f"{kind} {count}" for kind, count in report.anomaly_counts().items()) or "none"
        verb, logged = ("would pin", "would be logged to") if dry_run else ("pinned", "logged to")
        self.stdout.write(
            f"summary: {len(report.outcomes)} export(s) without a snapshot; {verb} {len(report.fixable)}; "
            f"anomalies {len(report.anomalies)} ({counts})"
            + (f", {logged} {report.log_path}" if report.anomalies else "")
        )

    @staticmethod
    def _line(outcome: BackfillOutcome, *, dry_run: bool) -> str:
        head = (
            f"export {outcome.export_id} (execution {outcome.execution_id} v{outcome.version}, "
            f"created {outcome.created_at.isoformat()})"
        )
        snapshot = outcome.snapshot
        if outcome.anomaly or snapshot is None:  # an outcome without anomaly has its snapshot
            return f"{head}: {outcome.anomaly}: {outcome.reason}"
        verb = "would pin" if dry_run else "pinned"
        return f"{head}: {verb} snapshot {snapshot.pk} ({snapshot.template_key} v{snapshot.version}, {outcome.source})"
