from django.contrib import admin, messages

from config.errors import DossierError
from exports.models import (
    Evidence,
    Execution,
    ExecutionEvent,
    ExportArtifact,
    ExportAttachment,
    NarrativeExport,
    PackagingRun,
    SigningKey,
)
from exports.services.packaging import packaging_enqueue
from governance.admin import ReadOnlyAdmin


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
    list_display = [
        "id",
        "execution",
        "kind",
        "title",
        "size",
        "classification",
        "storage_tier",
        "fixity_status",
        "created_at",
    ]
    list_filter = ["kind", "classification", "storage_tier", "fixity_status"]
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
        "expired_at",
        "storage_tier",
        "fixity_status",
    ]
    list_filter = ["compression", "storage_tier", "fixity_status"]
    search_fields = ["sha256", "stored_sha256", "storage_path", "bag_name"]
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
