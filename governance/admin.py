from django.contrib import admin

from governance.models import AuditChainVerification, AuditEvent, Membership, Role, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["key", "label"]
    search_fields = ["key", "label"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["team", "role"]
    search_fields = ["user__username", "team__slug"]
    autocomplete_fields = ["user", "team", "role"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Append-only records: visible to staff, never edited or deleted through the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "created_at", "action", "actor_username", "object_type", "object_id", "team_id"]
    list_filter = ["action"]
    search_fields = ["action", "object_id", "actor_username"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(AuditChainVerification)
class AuditChainVerificationAdmin(ReadOnlyAdmin):
    list_display = ["checked_at", "ok", "rows", "broken_sequence", "reason", "duration_ms"]
