from django.apps import AppConfig

# Approval and preview events that the governance event feed carries (docs/feed.md).
FEED_EVENT_TYPES = {
    "approval": (
        "narrative_export.approval.stage_started",
        "narrative_export.approval.stage_completed",
        "narrative_export.approval.rejected",
        "narrative_export.approval.finalized",
        "narrative_export.approval.stage_overdue",
        "narrative_export.approval.stage_escalated",
        "narrative_export.approval.stage_delegated",
        "narrative_export.approval.stage_reset",
    ),
    "preview": ("governance.preview.summary",),
}


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from governance.feed_registry import feed_event_types_register

        for category, actions in FEED_EVENT_TYPES.items():
            feed_event_types_register(category, *actions)
