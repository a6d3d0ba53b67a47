"""Ladders are changed only through the services (signatures need a password); the admin shows them read-only
and offers the guardrail's dispatch as an action. Exports get relabelling actions that go through
``export_relabel``, the service the API uses (docs/clearance.md)."""

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
from approvals.services.classification import export_relabel
from config.errors import DossierError
from exports.admin import NarrativeExportAdmin
from exports.models import NarrativeExport
from governance.admin import ReadOnlyAdmin
from governance.choices import CLASSIFICATION_ORDER


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


def _relabel_action(label: str):
    def relabel(modeladmin, request, queryset):
        changed = 0
        for export in queryset:
            try:
                export_relabel(export_id=export.pk, actor=request.user, classification=label)
                changed += 1
            except DossierError as exc:
                modeladmin.message_user(request, f"export {export.pk}: {exc.message}", level=messages.WARNING)
        modeladmin.message_user(request, f"{changed} export(s) labelled {label}.")

    relabel.__name__ = f"relabel_{label.lower()}"
    return admin.action(description=f"Label as {label} (roles compliance or admin; audited)")(relabel)


class ClassifiedNarrativeExportAdmin(NarrativeExportAdmin):
    """The exports' admin, with relabelling actions: the same rules as the API (never below the evidence, only
    upwards once signed, the team's compliance or admin only), recorded as ``narrative_export.relabelled``."""

    actions = [*NarrativeExportAdmin.actions, *(_relabel_action(str(label)) for label in CLASSIFICATION_ORDER)]


admin.site.unregister(NarrativeExport)
admin.site.register(NarrativeExport, ClassifiedNarrativeExportAdmin)
