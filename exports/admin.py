from django.contrib import admin

from exports.models import Evidence, Execution, ExecutionEvent
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
    list_display = ["id", "execution", "kind", "title", "size", "classification", "created_at"]
    list_filter = ["kind", "classification"]
    search_fields = ["title", "sha256", "original_filename"]
    list_select_related = ["execution"]
