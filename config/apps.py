from django.apps import AppConfig


class DossierConfig(AppConfig):
    """Project-wide pieces that belong to no app: the deployment checks of config/checks.py."""

    name = "config"
    label = "dossier"
    verbose_name = "Dossier"

    def ready(self) -> None:
        from config import checks  # noqa: F401  (registers the checks)
