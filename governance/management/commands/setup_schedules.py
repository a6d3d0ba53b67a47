from config.commands import DossierCommand
from governance.services.schedules import schedules_setup


class Command(DossierCommand):
    help = "Create or update the periodic tasks in the database scheduler (idempotent)."

    def handle(self, *args, **options):
        for change in schedules_setup():
            state = "created" if change.created else "updated" if change.updated else "unchanged"
            self.stdout.write(f"{change.name}: {change.task} every {change.every_seconds}s ({state})")
