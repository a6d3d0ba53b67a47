from django.apps import AppConfig

# Lifecycle events of exports that the governance event feed carries (docs/feed.md).
FEED_EVENT_TYPES = {
    "packaging": (
        "narrative_export.packaging.awaiting_approval",
        "narrative_export.packaging.queued",
        "narrative_export.packaging.completed",
        "narrative_export.packaging.failed",
    ),
    "artifact": (
        "narrative_export.artifact.downloaded",
        "narrative_export.artifact.expired",
        "narrative_export.artifact.integrity_failed",
        "narrative_export.artifact.decryption_failed",
        "narrative_export.export_denied",
        "narrative_export.relabelled",
        "narrative_export.artifact.verified",
    ),
}


class ExportsConfig(AppConfig):
    name = "exports"
    verbose_name = "Exports"

    def ready(self) -> None:
        from governance.feed_registry import feed_event_types_register

        for category, actions in FEED_EVENT_TYPES.items():
            feed_event_types_register(category, *actions)
