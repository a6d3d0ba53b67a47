from config.commands import EXIT_ERROR, DossierCommand
from exports.services.retention import DEFAULT_BATCH_SIZE, retention_run_recorded


class Command(DossierCommand):
    help = (
        "Purge what retention makes due and no legal hold covers, and report counts per category "
        "(docs/records-lifecycle.md). --dry-run reports the same and changes nothing. Exit 0 done, 1 error."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Report what would be purged; change nothing.")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="Objects per transaction.")

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            self.stderr.write("error: --batch-size must be at least 1")
            raise SystemExit(EXIT_ERROR)
        report = retention_run_recorded(dry_run=options["dry_run"], batch_size=options["batch_size"])
        self.stdout.write(f"retention {'dry run' if report.dry_run else 'run'} at {report.started_at.isoformat()}")
        for line in report.lines():
            self.stdout.write(line)
