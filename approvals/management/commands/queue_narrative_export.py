from approvals.guardrails import dispatch_export_for_packaging_by_id
from config.commands import EXIT_INVALID, DossierCommand
from textpolicy.utc import utc_iso


class Command(DossierCommand):
    help = (
        "Queue an export for packaging through the approval guardrail. Prints whether it was queued, the guardrail "
        "status, the pending stage and the forecast. Exit codes: 0 queued, 3 blocked by the guardrail, 1 error."
    )

    def add_arguments(self, parser):
        parser.add_argument("export_id", type=int, help="The id of the narrative export.")

    def handle(self, *args, export_id: int, **options):
        outcome = dispatch_export_for_packaging_by_id(export_id)
        verdict = outcome.verdict
        stage = verdict.pending_stage
        pending = f"{stage['index'] + 1}. {stage['name']} ({stage['required_role']})" if stage else "none"
        self.stdout.write(f"queued: {outcome.queued}")
        self.stdout.write(f"guardrail: {verdict.status} — {verdict.reason}")
        self.stdout.write(f"pending stage: {pending}")
        self.stdout.write(f"forecast: {utc_iso(verdict.forecast) or 'none'}")
        self.stdout.write(f"export status: {outcome.export.status}")
        if not outcome.queued:
            raise SystemExit(EXIT_INVALID)
