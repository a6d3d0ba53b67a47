from django import forms
from django.contrib import admin, messages

from config.errors import DossierError
from exports.choices import LegalHoldScope
from exports.models import (
    Evidence,
    Execution,
    ExecutionEvent,
    ExportArtifact,
    ExportAttachment,
    LegalHold,
    NarrativeExport,
    PackagingRun,
    RetentionTombstone,
    SigningKey,
)
from exports.permissions import HOLD_MANAGERS, HOLD_READERS
from exports.services.holds import legal_hold_place, legal_hold_release
from exports.services.packaging import packaging_enqueue
from governance.admin import ReadOnlyAdmin, ServiceErrorsAsMessages, StaffReadableAdmin, TeamScopedAdmin
from governance.models import Membership, Team


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "team", "protocol_template_key", "status", "owner", "created_at"]
    list_filter = ["team", "status"]
    search_fields = ["title", "protocol_template_key"]
    list_select_related = ["team", "owner"]
    readonly_fields = ["last_sequence", "created_at", "updated_at"]
    autocomplete_fields = ["owner", "team"]


@admin.register(ExecutionEvent)
class ExecutionEventAdmin(ReadOnlyAdmin):
    list_display = ["execution", "sequence", "event_type", "actor", "occurred_at", "recorded_at"]
    list_filter = ["event_type"]
    search_fields = ["event_type", "execution__title"]
    list_select_related = ["execution", "actor"]
    show_full_result_count = False


@admin.register(Evidence)
class EvidenceAdmin(ReadOnlyAdmin):
    list_display = ["id", "execution", "kind", "title", "size", "classification", "created_at"]
    list_filter = ["kind", "classification"]
    search_fields = ["title", "sha256", "original_filename"]
    list_select_related = ["execution"]


class ExportAttachmentInline(admin.TabularInline):
    model = ExportAttachment
    fields = ["kind", "title", "size", "sha256", "bundle_path"]
    readonly_fields = fields  # type: ignore[assignment]  # the same names, read-only
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class PackagingRunInline(admin.TabularInline):
    model = PackagingRun
    fields = ["attempt", "status", "started_at", "duration_ms", "bytes", "error_code"]
    readonly_fields = fields  # type: ignore[assignment]  # the same names, read-only
    extra = 0
    can_delete = False
    ordering = ["-started_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(NarrativeExport)
class NarrativeExportAdmin(ReadOnlyAdmin):
    """Exports are changed only through their lifecycle (services); the admin shows them and can queue them."""

    list_display = ["id", "execution", "version", "status", "author", "classification", "created_at", "packaged_at"]
    list_filter = ["status", "classification"]
    search_fields = ["narrative_digest", "execution__title"]
    list_select_related = ["execution", "author"]
    inlines = [ExportAttachmentInline, PackagingRunInline]
    actions = ["queue_for_packaging"]

    @admin.action(description="Queue for packaging (packaging gates still decide)")
    def queue_for_packaging(self, request, queryset):
        queued = 0
        for export in queryset:
            try:
                packaging_enqueue(export=export, actor=request.user)
                queued += 1
            except DossierError as exc:
                self.message_user(request, f"export {export.pk}: {exc.message}", level=messages.WARNING)
        self.message_user(request, f"{queued} export(s) queued.")

    def has_change_permission(self, request, obj=None):
        # Needed for admin actions to be offered; every field stays read-only.
        return obj is None and request.user.has_perm("exports.change_narrativeexport")


@admin.register(ExportArtifact)
class ExportArtifactAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "export",
        "bag_name",
        "size",
        "compression",
        "signing_key",
        "retain_until",
        "retention_mode",
        "expired_at",
    ]
    list_filter = ["compression", "retention_mode"]
    search_fields = ["sha256", "storage_path", "bag_name"]
    list_select_related = ["export", "signing_key"]


@admin.register(PackagingRun)
class PackagingRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "export", "attempt", "status", "started_at", "duration_ms", "bytes", "error_code"]
    list_filter = ["status", "error_code"]
    search_fields = ["task_id", "error_message"]
    list_select_related = ["export"]
    date_hierarchy = "started_at"


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    """Public halves only: the encrypted private key is never shown."""

    list_display = ["key_id", "algorithm", "status", "created_at", "retired_at"]
    list_filter = ["status"]
    fields = ["key_id", "algorithm", "status", "public_key_pem", "encryption", "created_at", "retired_at"]
    readonly_fields = fields  # type: ignore[assignment]  # the same names, read-only


def _teams_with(request, roles) -> list[int]:
    return list(Membership.objects.filter(user=request.user, role__key__in=roles).values_list("team_id", flat=True))


class LegalHoldActiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "active"

    def lookups(self, request, model_admin):
        return [("true", "Active"), ("false", "Released")]

    def queryset(self, request, queryset):
        if self.value() in ("true", "false"):
            return queryset.filter(released_at__isnull=self.value() == "true")
        return queryset


class LegalHoldForm(forms.ModelForm):
    """Placing asks for the team, the scope, the export (export scope) and a reason; an active hold's page asks
    for a release reason, and saving it releases the hold (docs/records-lifecycle.md)."""

    export_id = forms.IntegerField(required=False, min_value=1, help_text="With scope export: the export's id.")
    release_reason = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="Fill in and save to release the hold."
    )

    class Meta:
        model = LegalHold
        fields = ["team", "scope", "reason"]


@admin.register(LegalHold)
class LegalHoldAdmin(ServiceErrorsAsMessages, TeamScopedAdmin, StaffReadableAdmin):
    form = LegalHoldForm
    list_display = ["id", "team", "scope", "export", "placed_by", "placed_at", "released_by", "released_at"]
    list_filter = [LegalHoldActiveFilter, "scope", "team"]
    list_select_related = ["team", "export", "placed_by", "released_by"]
    search_fields = ["reason", "team__slug"]

    def scope(self, request, queryset):
        return queryset.filter(team_id__in=_teams_with(request, HOLD_READERS))

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["team", "scope", "export_id", "reason"]
        fields = ["team", "scope", "export", "reason", "placed_by", "placed_at"]
        if obj.released_at is None and self.has_change_permission(request, obj):
            return [*fields, "release_reason"]
        return [*fields, "released_by", "released_at", "release_reason"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        readonly = ["team", "scope", "export", "reason", "placed_by", "placed_at", "released_by", "released_at"]
        return (
            readonly
            if obj.released_at is None and self.has_change_permission(request, obj)
            else [
                *readonly,
                "release_reason",
            ]
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "team":
            teams = Team.objects.all()
            if not request.user.is_superuser:
                teams = teams.filter(pk__in=_teams_with(request, HOLD_MANAGERS))
            kwargs["queryset"] = teams
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request):
        return request.user.is_active and (request.user.is_superuser or bool(_teams_with(request, HOLD_MANAGERS)))

    def has_change_permission(self, request, obj=None):
        if not request.user.is_active:
            return False
        if request.user.is_superuser:
            return True
        teams = _teams_with(request, HOLD_MANAGERS)
        return bool(teams) if obj is None else obj.team_id in teams

    def has_delete_permission(self, request, obj=None):
        return False  # a hold is released, never deleted

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            placed = legal_hold_place(
                actor=request.user,
                team=data["team"],
                scope=data["scope"],
                export_id=data.get("export_id") if data["scope"] == LegalHoldScope.EXPORT else None,
                reason=data["reason"],
            )
            obj.pk, obj.placed_at = placed.pk, placed.placed_at
            return
        if data.get("release_reason"):
            legal_hold_release(actor=request.user, hold_id=obj.pk, reason=data["release_reason"])

    def save_related(self, request, form, formsets, change):
        """Nothing related to save: a hold is one row, written by its service."""

    def construct_change_message(self, request, form, formsets, add=False):
        return [{"added": {}}] if add else [{"changed": {"fields": ["released"]}}]


@admin.register(RetentionTombstone)
class RetentionTombstoneAdmin(TeamScopedAdmin, StaffReadableAdmin, ReadOnlyAdmin):
    list_display = ["id", "team", "category", "rule", "export", "storage_path", "size", "sha256", "purged_at"]
    list_filter = ["category", "rule", "retention_mode"]
    search_fields = ["storage_path", "sha256"]
    list_select_related = ["team", "export"]
    date_hierarchy = "purged_at"
