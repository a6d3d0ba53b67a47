from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from governance import receivers
        from governance.services.outbox import outbox_handlers_register, outbox_request_signals_connect
        from governance.services.timestamps import timestamp_handlers_register

        receivers.connect()
        outbox_handlers_register()
        outbox_request_signals_connect()
        timestamp_handlers_register()
