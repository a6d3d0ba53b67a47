from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from governance import receivers
        from governance.services.outbox import outbox_handlers_register
        from governance.services.timestamps import timestamp_handlers_register

        receivers.connect()
        outbox_handlers_register()
        timestamp_handlers_register()
