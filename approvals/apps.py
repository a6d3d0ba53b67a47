from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from exports.events import EventType as E
        from governance.feed_registry import feed_event_types_register

        # Approval and preview events that the governance event feed carries (docs/feed.md).
        feed_event_types_register(
            "approval",
            E.STAGE_STARTED,
            E.STAGE_COMPLETED,
            E.APPROVAL_REJECTED,
            E.APPROVAL_FINALIZED,
            E.STAGE_OVERDUE,
            E.STAGE_ESCALATED,
            E.STAGE_DELEGATED,
            E.STAGE_RESET,
            E.APPROVAL_EXPIRED,
        )
        feed_event_types_register("preview", E.PREVIEW_SUMMARY)
