"""replay_export <export-id> [--dry-run]: re-package a version and report whether its digest is identical.

Exit codes: 0 identical, 3 different, 1 error. Storage is never changed; without --dry-run the outcome is
written to the audit trail.
"""

import sys

from django.core.management.base import CommandError

from config.commands import EXIT_INVALID, DossierCommand
from exports.models import NarrativeExport
from exports.services.packaging import export_replay


class Command(DossierCommand):
    help = "Re-package an export version and compare its sha256 with the stored artifact. Exit 0 same, 3 differs."

    def add_arguments(self, parser):
        parser.add_argument("export_id", type=int)
        parser.add_argument("--dry-run", action="store_true", help="compare only; write nothing to the audit trail")

    def handle(self, *args, export_id: int, dry_run: bool, **options):
        found = NarrativeExport.objects.select_related("execution__team", "template_snapshot").filter(pk=export_id)
        export = found.first()
        if export is None:
            raise CommandError(f"export {export_id} does not exist")
        result = export_replay(export=export, record=not dry_run)
        verdict = "identical" if result.identical else "DIFFERENT"
        self.stdout.write(
            f"export {result.export_id} v{result.version}: replayed sha256 {result.replayed_sha256} "
            f"({result.size} bytes), stored {result.stored_sha256}: {verdict}"
        )
        if not result.identical:
            sys.exit(EXIT_INVALID)
