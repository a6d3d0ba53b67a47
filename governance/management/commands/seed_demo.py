from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from config.commands import DossierCommand


class Command(DossierCommand):
    help = (
        "Create the demo team, users, executions and exports (idempotent). Each app adds its part through "
        "settings.DOSSIER_DEMO_SEEDERS, lowest app first."
    )

    def handle(self, *args, **options):
        for dotted in settings.DOSSIER_DEMO_SEEDERS:
            with transaction.atomic():
                import_string(dotted)(self.stdout)
        self.stdout.write("demo data ready", self.style.SUCCESS)
