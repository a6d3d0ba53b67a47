import os

from django.core.management.base import CommandError

from config.commands import EXIT_INVALID, DossierCommand
from governance.services.audit import audit_chain_verify
from governance.services.checkpoints import audit_checkpoints_verify


class Command(DossierCommand):
    help = "Verify the tamper-evident audit chain. Exit 0 when intact, 3 naming the first broken row, 1 on error."

    def add_arguments(self, parser):
        parser.add_argument("--no-record", action="store_true", help="Do not store the outcome.")
        parser.add_argument(
            "--checkpoints",
            action="store_true",
            help="Also check every signed checkpoint and its trusted timestamp (docs/trusted-time.md).",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=os.cpu_count() or 1,
            help="Processes to verify with on PostgreSQL (default: one per CPU).",
        )

    def handle(self, *args, **options):
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        report = audit_chain_verify(record=not options["no_record"], workers=options["workers"])
        broken = not report.ok
        if broken:
            self.stdout.write(f"audit chain broken at sequence {report.broken_sequence}: {report.reason}")
        else:
            self.stdout.write(f"audit chain intact: {report.rows} rows")
        if options["checkpoints"]:
            checked = audit_checkpoints_verify()
            for problem in checked.problems:
                self.stdout.write(f"checkpoint problem: {problem}")
            self.stdout.write(
                f"checkpoints: {checked.checked} checked, {checked.timestamped} with a trusted timestamp, "
                f"{len(checked.problems)} problems"
            )
            broken = broken or not checked.ok
        if broken:
            raise SystemExit(EXIT_INVALID)
