from config.commands import EXIT_INVALID, DossierCommand
from governance.services.audit import audit_chain_verify


class Command(DossierCommand):
    help = "Verify the tamper-evident audit chain. Exit 0 when intact, 3 naming the first broken row, 1 on error."

    def add_arguments(self, parser):
        parser.add_argument("--no-record", action="store_true", help="Do not store the outcome.")

    def handle(self, *args, **options):
        report = audit_chain_verify(record=not options["no_record"])
        if report.ok:
            self.stdout.write(f"audit chain intact: {report.rows} rows")
            return
        self.stdout.write(f"audit chain broken at sequence {report.broken_sequence}: {report.reason}")
        raise SystemExit(EXIT_INVALID)
