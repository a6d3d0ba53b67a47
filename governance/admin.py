"""Django admin for governance; templates, snapshots, assignments and baselines are the curation UI
(docs/templates-and-baselines.md).

Every change goes through the same services as the API, so versioning, validation, permissions and audit rows
are identical whichever door a curator uses. Staff users who are not superusers see only platform templates and
what belongs to their own teams (another team's object is a 404, its name never appears in a filter or a
choice); they change only what belongs to teams where they hold ``compliance`` or ``admin``. Superusers see and
curate everything, platform templates included. Snapshots, audit logs and baseline events are read-only.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from config.errors import DossierError
from governance.models import (
    AuditChainVerification,
    AuditCheckpoint,
    AuditEvent,
    Clearance,
    GovernanceBaseline,
    GovernanceBaselineEvent,
    GovernanceTemplateAuditLog,
    Membership,
    Role,
    Team,
    TrustedTimestamp,
    WorkflowStageBlueprint,
    WorkflowTemplate,
    WorkflowTemplateAssignment,
    WorkflowTemplateSnapshot,
)
from governance.permissions import can_curate_templates_of, curated_team_ids, is_template_curator
from governance.selectors.templates import snapshot_has_drifted
from governance.services.clearance import clearance_policy_set, clearance_set
from governance.services.templates import (
    assignment_delete,
    known_role_keys,
    template_archive,
    template_assign,
    template_create,
    template_fork,
    template_publish,
    template_redaction_set,
    template_stage_rows_ensure,
    template_update,
)
from governance.validation import (
    DEFAULT_REJECT_MEANING,
    DEFAULT_SLA,
    normalize_hours,
    template_content_normalize,
    template_content_problems,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Append-only records: visible to staff, never edited or deleted through the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class StaffReadableAdmin(admin.ModelAdmin):
    """Readable by every active staff user: governance rules are role-based, not Django model permissions."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff


class StaffReadOnlyAdmin(StaffReadableAdmin, ReadOnlyAdmin):
    pass


# The mixin is used on model admins only: the type checker reads it as one.
if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin
else:
    _ModelAdmin = object


class ServiceErrorsAsMessages(_ModelAdmin):
    """Show a refused service call (permission, conflict, validation) as an admin error message, not a 500."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DossierError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except DossierError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))


class TeamScopedAdmin(admin.ModelAdmin):
    """Restricts a team-owned model to what its viewer may see; a hidden object is a 404, not a redirect.

    Subclasses define ``scope(request, queryset)``; superusers see everything.
    """

    def scope(self, request, queryset: QuerySet) -> QuerySet:
        return queryset.visible_to(request.user)  # type: ignore[attr-defined]  # a team-scoped model's queryset

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else self.scope(request, queryset)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Django's default redirects to the index with "doesn't exist"; outside one's teams it is simply absent.
        raise Http404(f"No {opts.verbose_name} {object_id}.")

    def delete_view(self, request, object_id, extra_context=None):
        # Django checks the delete permission before it looks the object up: absent comes first here.
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404(f"No {self.opts.verbose_name} {object_id}.")
        return super().delete_view(request, object_id, extra_context)


def visible_teams(request) -> QuerySet[Team]:
    return Team.objects.all() if request.user.is_superuser else Team.objects.visible_to(request.user)


def curated_teams(request) -> QuerySet[Team]:
    return (
        Team.objects.all() if request.user.is_superuser else Team.objects.filter(pk__in=curated_team_ids(request.user))
    )


def visible_templates(request) -> QuerySet[WorkflowTemplate]:
    templates = WorkflowTemplate.objects.all()
    return templates if request.user.is_superuser else templates.visible_to(request.user)


class TeamListFilter(admin.SimpleListFilter):
    """A team filter listing only the viewer's teams (every team for superusers)."""

    title = "team"
    parameter_name = "team"
    team_path = "team"
    platform_label = ""  # when set, a choice for rows without a team (platform templates)

    def lookups(self, request, model_admin):
        choices = [(str(team.pk), team.name) for team in visible_teams(request)]
        return [("platform", self.platform_label), *choices] if self.platform_label else choices

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value == "platform" and self.platform_label:
            return queryset.filter(**{f"{self.team_path}__isnull": True})
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(**{f"{self.team_path}__id": int(value)})


class TemplateTeamFilter(TeamListFilter):
    title = "owner"
    platform_label = "Platform (every team)"


class SnapshotTeamFilter(TemplateTeamFilter):
    team_path = "template__team"


class SnapshotKeyFilter(admin.SimpleListFilter):
    """Template keys of the snapshots the viewer may see (never another team's keys)."""

    title = "template key"
    parameter_name = "template_key"

    def lookups(self, request, model_admin):
        snapshots = model_admin.get_queryset(request).order_by("template_key")
        return [(key, key) for key in snapshots.values_list("template_key", flat=True).distinct()]

    def queryset(self, request, queryset):
        return queryset.filter(template_key=self.value()) if self.value() else queryset


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "time_zone", "clearance_policy", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]

    def save_model(self, request, obj, form, change):
        """A changed ``clearance_policy`` goes through ``clearance_policy_set`` (audited); the rest saves as usual."""
        policy = obj.clearance_policy
        if change and "clearance_policy" in form.changed_data:
            obj.clearance_policy = form.initial["clearance_policy"]
        super().save_model(request, obj, form, change)
        if change and policy != obj.clearance_policy:
            clearance_policy_set(team=obj, policy=policy, actor=request.user, check_role=False)


@admin.register(Clearance)
class ClearanceAdmin(ServiceErrorsAsMessages, admin.ModelAdmin):
    """Clearances are written through ``clearance_set`` (audited); a member without a row is Internal."""

    list_display = ["user", "team", "level", "updated_at"]
    list_filter = ["team", "level"]
    search_fields = ["user__username", "team__slug"]
    autocomplete_fields = ["user", "team"]

    def save_model(self, request, obj, form, change):
        clearance_set(team=obj.team, username=obj.user.username, level=obj.level, actor=request.user)


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


@admin.register(TrustedTimestamp)
class TrustedTimestampAdmin(ReadOnlyAdmin):
    """docs/trusted-time.md: pending tokens show their attempts and last error."""

    list_display = ["id", "subject_type", "subject_id", "status", "gen_time", "tsa_url", "attempts", "last_error"]
    list_filter = ["status", "subject_type"]
    exclude = ["subject_bytes", "response"]


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = ["id", "sequence", "head_hash", "key_id", "created_at"]
    exclude = ["statement", "signature"]


# --- Templates ------------------------------------------------------------------------------------------------


class StageBlueprintForm(forms.ModelForm):
    position = forms.IntegerField(min_value=1, max_value=99, required=False, help_text="Order of signing.")
    required_role = forms.ModelChoiceField(queryset=Role.objects.all(), to_field_name="key", label="Role")
    sla_hours = forms.DecimalField(max_digits=7, decimal_places=2, label="SLA hours")
    reject_meaning = forms.CharField(
        max_length=200, required=False, label="Rejection meaning", help_text=f"Blank: “{DEFAULT_REJECT_MEANING}”."
    )

    class Meta:
        model = WorkflowStageBlueprint
        fields = ["position", "name", "required_role", "sla_hours", "meaning", "reject_meaning"]
        labels = {"meaning": "Approval meaning", "reject_meaning": "Rejection meaning"}

    def _get_validation_exclusions(self):
        # The template rules (StageBlueprintFormSet.clean) check the whole ladder with clear messages; the
        # rows themselves are rewritten by the service, so per-row database checks would only echo them.
        return {field.name for field in self._meta.model._meta.fields}


class StageBlueprintFormSet(BaseInlineFormSet):
    """Validates the ladder as a whole with the template rules and pins each message on its stage and field."""

    def ordered_forms(self, *, include_invalid: bool = False) -> list[forms.Form]:  # type: ignore[override]
        """Stage forms that will exist after saving, in signing order (position, then order on the page)."""
        kept = [
            (index, form)
            for index, form in enumerate(self.forms)
            if hasattr(form, "cleaned_data")
            and (include_invalid or form.is_valid())
            and not (self.can_delete and self._should_delete_form(form))  # type: ignore[attr-defined]
            and (form.instance.pk or form.has_changed())
        ]
        kept.sort(key=lambda item: (item[1].cleaned_data.get("position") or 10_000 + item[0], item[0]))
        return [form for _, form in kept]

    @staticmethod
    def _stage(form: forms.Form, *, partial: bool = False) -> dict[str, Any]:
        data = form.cleaned_data
        stage = {
            "name": data.get("name"),
            "required_role": data["required_role"].key if data.get("required_role") else None,
            "sla_hours": normalize_hours(data.get("sla_hours")),
            "meaning": data.get("meaning"),
            "reject_meaning": data.get("reject_meaning") or DEFAULT_REJECT_MEANING,
        }
        return {key: value for key, value in stage.items() if value is not None} if partial else stage

    def stages(self) -> list[dict[str, Any]]:
        return [self._stage(form) for form in self.ordered_forms()]

    def clean(self):
        """Check the ladder even when some fields already failed, without repeating a field's own error."""
        ordered = self.ordered_forms(include_invalid=True)
        permitted = [role for role in self.data.getlist("permitted_roles") if role] or None  # type: ignore[attr-defined]
        stages = [self._stage(form, partial=True) for form in ordered]
        content = template_content_normalize(stages=stages, permitted_roles=permitted)
        content["sla_defaults"], content["retention_days"] = dict(DEFAULT_SLA), 1
        for problem in template_content_problems(content, known_roles=known_role_keys()):
            if problem.stage_index is not None:
                form = ordered[problem.stage_index]
                field = problem.stage_field if problem.stage_field in form.fields else None
                if field is None or field not in form.errors:
                    form.add_error(field, problem.message)
            elif problem.path[:1] == ("stages",) and not any(self.errors):
                raise ValidationError(problem.message)


class StageBlueprintInline(admin.TabularInline):
    model = WorkflowStageBlueprint
    form = StageBlueprintForm
    formset = StageBlueprintFormSet
    extra = 0
    min_num = 0
    ordering = ["position"]
    fields = ["position", "name", "required_role", "sla_hours", "meaning", "reject_meaning"]
    verbose_name = "stage"
    verbose_name_plural = "stages (in signing order)"

    def get_extra(self, request, obj=None, **kwargs):
        return 3 if obj is None else 1 if obj.is_draft else 0

    def _editable(self, request, obj) -> bool:
        if obj is None:
            return is_template_curator(request.user)
        return obj.is_draft and can_curate_templates_of(request.user, team_id=obj.team_id)

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request, obj=None):
        return self._editable(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(request, obj)


class WorkflowTemplateForm(forms.ModelForm):
    template_key = forms.SlugField(
        max_length=100,
        required=False,
        help_text="An existing key makes the next version of that template. Leave empty when forking to make the "
        "next version of the source.",
    )
    permitted_roles = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Roles that may sign this template's stages. None ticked: the stages' roles.",
    )
    sla_hours = forms.DecimalField(min_value=Decimal("0.01"), max_digits=7, decimal_places=2, initial=48)
    escalate_after_hours = forms.DecimalField(min_value=Decimal("0.01"), max_digits=7, decimal_places=2, initial=24)

    class Meta:
        model = WorkflowTemplate
        fields = ["team", "template_key", "name", "description", "forked_from", "permitted_roles", "retention_days"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["permitted_roles"].choices = list(Role.objects.values_list("key", "label"))  # type: ignore[attr-defined]
        if self.instance.pk:
            self.initial["permitted_roles"] = self.instance.permitted_roles
            self.initial.update({key: self.instance.sla_defaults.get(key) for key in DEFAULT_SLA})

    def _get_validation_exclusions(self):
        # Versioning (key, version, is_latest) is decided by the service under a lock, not by the form.
        return {field.name for field in self._meta.model._meta.fields}

    def clean(self):
        cleaned = super().clean() or self.cleaned_data
        if not self.instance.pk and not cleaned.get("template_key") and not cleaned.get("forked_from"):
            self.add_error("template_key", "Give a template key, or choose a template to fork from.")
        return cleaned

    def content(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data.get("name") or "",
            "description": data.get("description") or "",
            "permitted_roles": data.get("permitted_roles") or None,
            "sla_defaults": {key: normalize_hours(data[key]) for key in DEFAULT_SLA},
            "retention_days": data.get("retention_days"),
        }


@admin.register(WorkflowTemplate)
class WorkflowTemplateAdmin(ServiceErrorsAsMessages, TeamScopedAdmin, StaffReadableAdmin):
    form = WorkflowTemplateForm
    inlines = [StageBlueprintInline]
    list_display = [
        "template_key",
        "version",
        "owner",
        "name",
        "status",
        "is_latest",
        "redaction_enabled",
        "stage_count",
        "forked_from",
        "updated_at",
    ]
    list_display_links = ["template_key", "version"]
    list_filter = ["status", "is_latest", TemplateTeamFilter]
    search_fields = ["template_key", "name", "description"]
    list_select_related = ["forked_from", "team"]
    autocomplete_fields = ["forked_from"]
    ordering = ["template_key", "-version"]
    actions = ["publish_selected", "archive_selected", "fork_selected", "redaction_off", "redaction_on"]
    readonly_after_creation = ["team", "template_key", "forked_from"]
    info_fields = [
        "version",
        "status",
        "is_latest",
        "redaction_enabled",
        "published_at",
        "archived_at",
        "created_by",
        "snapshot_link",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(stage_total=Count("stage_rows"))

    def get_object(self, request, object_id, from_field=None):
        template = super().get_object(request, object_id, from_field)
        if template is not None:
            template_stage_rows_ensure(template=template)
        return template

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "team":
            kwargs["queryset"] = curated_teams(request)
            kwargs["required"] = not request.user.is_superuser
            kwargs["empty_label"] = "Platform (every team)" if request.user.is_superuser else None
        elif db_field.name == "forked_from":
            templates = visible_templates(request)
            if not request.user.is_superuser:
                templates = templates.filter(team__in=curated_teams(request))
            kwargs["queryset"] = templates
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_fieldsets(self, request, obj=None):
        main = ["team", "template_key", "name", "description", "forked_from"]
        rules = ["permitted_roles", "sla_hours", "escalate_after_hours", "retention_days"]
        if obj is not None and not self.has_change_permission(request, obj):
            rules = ["permitted_roles_display", "sla_defaults", "retention_days"]
        sets = [(None, {"fields": main}), ("Rules", {"fields": rules})]
        if obj is not None:
            sets.append(("State", {"fields": self.info_fields}))
        return sets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if not self.has_change_permission(request, obj):
            return [
                "team",
                "template_key",
                "name",
                "description",
                "forked_from",
                "permitted_roles_display",
                "sla_defaults",
                "retention_days",
                *self.info_fields,
            ]
        return [*self.readonly_after_creation, *self.info_fields]

    @admin.display(description="Owner", ordering="team__slug")
    def owner(self, obj):
        return obj.team.name if obj.team_id else "Platform"

    @admin.display(description="Stages", ordering="stage_total")
    def stage_count(self, obj):
        return getattr(obj, "stage_total", None)

    @admin.display(description="Permitted roles")
    def permitted_roles_display(self, obj):
        return ", ".join(obj.permitted_roles)

    @admin.display(description="Snapshot")
    def snapshot_link(self, obj):
        snapshot = obj.snapshots.order_by("-id").first()
        if snapshot is None:
            return "—"
        url = reverse("admin:governance_workflowtemplatesnapshot_change", args=[snapshot.pk])
        state = "DRIFTED: content no longer matches its hash" if snapshot_has_drifted(snapshot) else "intact"
        return format_html(
            '<a href="{}">#{} sha256 {}…</a> ({})', url, snapshot.pk, snapshot.content_sha256[:12], state
        )

    # Permissions: staff read what they may see; curators of the owner change drafts; actions check each template.
    def has_add_permission(self, request):
        return is_template_curator(request.user)

    def has_change_permission(self, request, obj=None):
        if obj is None:
            return is_template_curator(request.user)
        return obj.is_draft and can_curate_templates_of(request.user, team_id=obj.team_id)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_curate_permission(self, request):
        return is_template_curator(request.user)

    # Saving: the form and the inline stages become one service call.
    def save_model(self, request, obj, form, change):
        """Deferred to save_related, where the inline stages are known: one service call creates or updates."""

    def save_related(self, request, form, formsets, change):
        stages_formset = next(f for f in formsets if isinstance(f, StageBlueprintFormSet))
        content = {**form.content(), "stages": stages_formset.stages()}
        if change:
            template = template_update(template=form.instance, actor=request.user, **content)
        else:
            template = template_create(
                actor=request.user,
                team=form.cleaned_data.get("team"),
                template_key=form.cleaned_data.get("template_key") or "",
                forked_from=form.cleaned_data.get("forked_from"),
                **content,
            )
        form.instance.__dict__.update({k: v for k, v in template.__dict__.items() if k != "_state"})
        form.instance._state.adding = False

    def construct_change_message(self, request, form, formsets, add=False):
        return [{"added": {}}] if add else [{"changed": {"fields": sorted(form.changed_data)}}]

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, f"Draft {obj} created. Publish it from the list when it is ready.")
        return super().response_add(request, obj, post_url_continue)

    # Actions: thin callers of the services, one message per template.
    def _each(self, request, queryset, action, done: str):
        for template in queryset.order_by("template_key", "version"):
            try:
                result = action(template)
            except DossierError as exc:
                self.message_user(request, f"{template}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{template}: {done.format(result=result)}", messages.SUCCESS)

    @admin.action(description="Publish selected drafts (freeze a snapshot)", permissions=["curate"])
    def publish_selected(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda t: template_publish(template=t, actor=request.user),
            "published as snapshot {result.pk} (sha256 {result.content_sha256:.12}…).",
        )

    @admin.action(description="Archive selected templates", permissions=["curate"])
    def archive_selected(self, request, queryset):
        self._each(request, queryset, lambda t: template_archive(template=t, actor=request.user), "archived.")

    @admin.action(description="Fork selected into a new draft version", permissions=["curate"])
    def fork_selected(self, request, queryset):
        self._each(
            request, queryset, lambda t: template_fork(template=t, actor=request.user), "forked into draft {result}."
        )

    # Only compliance may switch redaction (template_redaction_set refuses others with a message).
    @admin.action(description="Switch redaction off for the selected templates (compliance)", permissions=["curate"])
    def redaction_off(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda t: template_redaction_set(template=t, enabled=False, actor=request.user),
            "redaction is off for every version ({result} changed); new bundles say 'Redaction: off'.",
        )

    @admin.action(description="Switch redaction back on for the selected templates", permissions=["curate"])
    def redaction_on(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda t: template_redaction_set(template=t, enabled=True, actor=request.user),
            "redaction is on for every version ({result} changed).",
        )


@admin.register(WorkflowTemplateSnapshot)
class WorkflowTemplateSnapshotAdmin(TeamScopedAdmin, StaffReadOnlyAdmin):
    list_display = ["id", "template_key", "version", "short_sha256", "integrity", "created_at", "created_by"]
    list_filter = [SnapshotKeyFilter, SnapshotTeamFilter]
    search_fields = ["template_key", "content_sha256"]
    list_select_related = ["created_by"]
    fields = [
        "template",
        "template_key",
        "version",
        "format_version",
        "content_sha256",
        "integrity",
        "document",
        "created_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the same names, read-only

    class Media:
        css = {"all": ["css/admin.css"]}  # styles live in files: the CSP allows no inline style

    def scope(self, request, queryset):
        return queryset.filter(template__in=visible_templates(request))

    @admin.display(description="sha256")
    def short_sha256(self, obj):
        return f"{obj.content_sha256[:16]}…"

    @admin.display(description="Integrity")
    def integrity(self, obj):
        if snapshot_has_drifted(obj):
            return format_html('<strong class="integrity-drift">DRIFT: content does not match its sha256</strong>')
        return "intact"

    @admin.display(description="Canonical JSON")
    def document(self, obj):
        try:
            pretty = json.dumps(json.loads(obj.canonical_json), indent=2, ensure_ascii=False)
        except ValueError:
            pretty = obj.canonical_json
        return format_html("<pre>{}</pre>", pretty)


class WorkflowTemplateAssignmentForm(forms.ModelForm):
    class Meta:
        model = WorkflowTemplateAssignment
        fields = ["template", "team", "protocol_template_key"]


@admin.register(WorkflowTemplateAssignment)
class WorkflowTemplateAssignmentAdmin(ServiceErrorsAsMessages, TeamScopedAdmin, StaffReadableAdmin):
    form = WorkflowTemplateAssignmentForm
    list_display = ["id", "template", "team", "protocol_template_key", "created_by", "created_at"]
    list_filter = [TeamListFilter]
    search_fields = ["template__template_key", "team__slug", "protocol_template_key"]
    list_select_related = ["template", "team", "created_by"]
    autocomplete_fields = ["template"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "team":
            kwargs["queryset"] = curated_teams(request)
        elif db_field.name == "template":
            templates = visible_templates(request)
            if not request.user.is_superuser:
                templates = templates.filter(Q(team__isnull=True) | Q(team__in=curated_teams(request)))
            kwargs["queryset"] = templates
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return ["team", "protocol_template_key"] if obj is not None else []

    def has_add_permission(self, request):
        return is_template_curator(request.user)

    def has_change_permission(self, request, obj=None):
        if obj is None:
            return is_template_curator(request.user)
        return can_curate_templates_of(request.user, team_id=obj.team_id)

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        assignment, _ = template_assign(
            template=obj.template,
            actor=request.user,
            team=obj.team,
            protocol_template_key=obj.protocol_template_key or "",
        )
        obj.pk, obj.created_at, obj.created_by_id = assignment.pk, assignment.created_at, assignment.created_by_id
        obj._state.adding = False

    def delete_model(self, request, obj):
        assignment_delete(assignment=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for assignment in queryset:
            assignment_delete(assignment=assignment, actor=request.user)


@admin.register(GovernanceTemplateAuditLog)
class GovernanceTemplateAuditLogAdmin(TeamScopedAdmin, StaffReadOnlyAdmin):
    list_display = ["created_at", "action", "template_key", "template_version", "snapshot_id", "actor_username"]
    list_filter = ["action"]
    search_fields = ["template_key", "actor_username"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def scope(self, request, queryset):
        """Rows about the viewer's teams, and team-less rows about templates they may see."""
        teams = Team.objects.visible_to(request.user)
        return queryset.filter(
            Q(team_id__in=teams.values("id")) | Q(team__isnull=True, template__in=visible_templates(request))
        )


# --- Baselines ------------------------------------------------------------------------------------------------


class BaselineEventInline(admin.TabularInline):
    model = GovernanceBaselineEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "event_type", "from_status", "to_status", "actor_username", "payload"]
    readonly_fields = fields  # type: ignore[assignment]  # the same names, read-only

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(GovernanceBaseline)
class GovernanceBaselineAdmin(TeamScopedAdmin, StaffReadOnlyAdmin):
    """Transitions belong to their roles through the API; here auditors and curators read their teams' history."""

    list_display = ["id", "protocol_template_key", "version", "title", "team", "status", "is_current", "published_at"]
    list_filter = ["status", "is_current", TeamListFilter]
    search_fields = ["protocol_template_key", "title"]
    list_select_related = ["team"]
    inlines = [BaselineEventInline]
    readonly_fields = [
        "team",
        "execution_id",
        "protocol_template_key",
        "version",
        "title",
        "summary",
        "parameters",
        "status",
        "is_current",
        "submitted_by",
        "reviewer_names",
        "reviewed_by",
        "reviewed_at",
        "review_comment",
        "published_by",
        "published_at",
        "rolled_back_by",
        "rolled_back_at",
        "rollback_reason",
        "created_at",
    ]
    fields = readonly_fields  # type: ignore[assignment]  # the same names, read-only

    @admin.display(description="Reviewers")
    def reviewer_names(self, obj):
        return format_html_join(", ", "{}", ((user.username,) for user in obj.reviewers.all()))


@admin.register(GovernanceBaselineEvent)
class GovernanceBaselineEventAdmin(TeamScopedAdmin, StaffReadOnlyAdmin):
    list_display = ["created_at", "baseline", "event_type", "from_status", "to_status", "actor_username"]
    list_filter = ["event_type"]
    search_fields = ["baseline__protocol_template_key", "actor_username"]
    list_select_related = ["baseline"]
