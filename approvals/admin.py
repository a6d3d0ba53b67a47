"""Ladders are changed only through the services (signatures need a password); the admin shows them read-only
and offers the guardrail's dispatch as an action."""

from django.contrib import admin, messages

from approvals.guardrails import dispatch_export_for_packaging
from approvals.models import (
    ApprovalHistory,
    ApprovalLadder,
    ApprovalSignature,
    ApprovalStage,
    EnforcementObservation,
    SignatureAttempt,
)
from config.errors import DossierError
from governance.admin import ReadOnlyAdmin


class StageInline(admin.TabularInline):
    model = ApprovalStage
    extra = 0
    can_delete = False
    fields = [
        "index",
        "name",
        "required_role",
        "status",
        "assignee",
        "iteration",
        "due_at",
        "overdue_at",
        "escalated_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the same names, read-only

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class SignatureInline(StageInline):
    model = ApprovalSignature  # type: ignore[assignment]
    fields = ["stage_index", "stage_name", "decision", "printed_name", "signed_at", "meaning", "superseded"]
    readonly_fields = fields


@admin.register(ApprovalLadder)
class ApprovalLadderAdmin(ReadOnlyAdmin):
    list_display = ["id", "export", "status", "iteration", "created_at", "finalized_at"]
    list_filter = ["status"]
    search_fields = ["export__execution__title", "=export__id"]
    list_select_related = ["export"]
    inlines = [StageInline, SignatureInline]
    actions = ["dispatch_for_packaging"]

    @admin.action(description="Queue for packaging (through the approval guardrail)")
    def dispatch_for_packaging(self, request, queryset):
        for ladder in queryset.select_related("export"):
            try:
                outcome = dispatch_export_for_packaging(ladder.export, actor=request.user)
            except DossierError as exc:
                self.message_user(request, f"Export {ladder.export_id}: {exc.message}", messages.ERROR)
                continue
            if outcome.queued:
                self.message_user(request, f"Export {ladder.export_id} queued for packaging.", messages.SUCCESS)
            else:
                self.message_user(
                    request, f"Export {ladder.export_id} blocked: {outcome.verdict.reason}", messages.WARNING
                )

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApprovalSignature)
class ApprovalSignatureAdmin(ReadOnlyAdmin):
    list_display = ["id", "ladder", "stage_index", "decision", "printed_name", "signed_at", "meaning", "superseded"]
    list_filter = ["decision", "superseded"]
    search_fields = ["signer_username", "printed_name", "narrative_digest"]


@admin.register(ApprovalHistory)
class ApprovalHistoryAdmin(ReadOnlyAdmin):
    list_display = ["id", "ladder", "stage", "action", "actor", "from_assignee", "to_assignee", "created_at"]
    list_filter = ["action"]
    list_select_related = ["ladder", "stage", "actor", "from_assignee", "to_assignee"]
    show_full_result_count = False


@admin.register(SignatureAttempt)
class SignatureAttemptAdmin(ReadOnlyAdmin):
    list_display = ["id", "user", "export", "succeeded", "refused_locked", "created_at"]
    list_filter = ["succeeded", "refused_locked"]
    search_fields = ["user__username"]


@admin.register(EnforcementObservation)
class EnforcementObservationAdmin(ReadOnlyAdmin):
    list_display = ["id", "export", "kind", "first_cycle", "last_cycle", "first_seen_at", "reported_at"]
    list_filter = ["kind"]
