from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"
    verbose_name = "Exports"

    def ready(self) -> None:
        from exports.events import EventType as E
        from exports.services.packaging import HANDLER_PACKAGE, packaging_dispatch
        from exports.services.team_data_exports import HANDLER_TEAM_DATA_BUILD, team_data_build_dispatch
        from governance.feed_registry import feed_event_types_register
        from governance.outbox import outbox_handler_register

        outbox_handler_register(HANDLER_PACKAGE, packaging_dispatch)  # docs/architecture.md, "The outbox"
        outbox_handler_register(HANDLER_TEAM_DATA_BUILD, team_data_build_dispatch)

        # Lifecycle events of exports that the governance event feed carries (docs/feed.md).
        feed_event_types_register(
            "packaging",
            E.PACKAGING_AWAITING_APPROVAL,
            E.PACKAGING_QUEUED,
            E.PACKAGING_COMPLETED,
            E.PACKAGING_FAILED,
        )
        feed_event_types_register(
            "artifact",
            E.ARTIFACT_DOWNLOADED,
            E.ARTIFACT_EXPIRED,
            E.ARTIFACT_INTEGRITY_FAILED,
            E.ARTIFACT_DECRYPTION_FAILED,
            E.EXPORT_DENIED,
            E.EXPORT_RELABELLED,
            E.ARTIFACT_VERIFIED,
            E.STORAGE_TIER_CHANGED,
        )
        feed_event_types_register(
            "records",
            E.LEGAL_HOLD_PLACED,
            E.LEGAL_HOLD_RELEASED,
            E.RETENTION_EXTENDED,
            E.RETENTION_SHORTENED,
            E.RETENTION_PURGED,
            E.EVIDENCE_PURGED,
        )
