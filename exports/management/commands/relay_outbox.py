"""relay_outbox: deliver the outbox's pending side effects now (docs/operations.md, "relay_outbox").

What the periodic ``exports.relay_outbox`` task does, from a shell: deliver every message that is due (packaging
tasks, cache invalidations, e-mails), prune deliveries older than ``DOSSIER_OUTBOX_RETAIN_DAYS`` and run the
``DOSSIER_OUTBOX_AFTER_RELAY`` housekeeping. Prints a line per batch and a summary with what is still pending.
Exit codes: 0 done (nothing failed), 1 error (some message or housekeeping step failed: it stays pending and is
retried with backoff; the reasons are printed).
"""

import sys

from config.commands import EXIT_ERROR, DossierCommand
from governance.selectors.outbox import outbox_backlog
from governance.services.outbox import OutboxRelayReport, outbox_run


class Command(DossierCommand):
    help = "Deliver pending outbox messages (tasks, cache invalidations, e-mails) now. Exit 0 done, 1 error."

    def handle(self, *args, **options):
        def progress(report: OutboxRelayReport) -> None:
            self.stdout.write(f"relayed {report.handled}: {report.delivered} delivered, {report.failed} failed")

        run = outbox_run(progress=progress)
        for error in run.relay.errors:
            self.stderr.write(f"failed: {error}")
        for path in run.housekeeping_failed:
            self.stderr.write(f"housekeeping failed: {path}")
        backlog = outbox_backlog()
        self.stdout.write(
            f"summary: {run.relay.delivered} delivered, {run.relay.failed} failed, {run.pruned} pruned; "
            f"{backlog.pending} pending (oldest {backlog.oldest_age_seconds:.0f} s)"
        )
        if run.relay.failed or run.housekeeping_failed:
            sys.exit(EXIT_ERROR)
