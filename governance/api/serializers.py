from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.schema import NON_BLANK
from governance.choices import Classification, ClearancePolicy, RetentionMode, RoleKey
from governance.models import (
    GovernanceBaseline,
    GovernanceBaselineEvent,
    WorkflowTemplate,
    WorkflowTemplateAssignment,
    WorkflowTemplateSnapshot,
)
from governance.selectors.templates import snapshot_has_drifted


class TokenInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class PasswordChangeInput(serializers.Serializer):
    old_password = serializers.CharField(max_length=4096, trim_whitespace=False)
    new_password = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenOutput(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`. Shown once; stored hashed.")
    expiry = serializers.DateTimeField(help_text="When the token stops working (UTC, ISO 8601).")


class AuthErrorBody(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class AuthErrorOutput(serializers.Serializer):
    error = AuthErrorBody()


class TooManyAttemptsDetails(serializers.Serializer):
    retry_after_seconds = serializers.IntegerField(min_value=1)


class TooManyAttemptsBody(serializers.Serializer):
    code = serializers.ChoiceField(choices=["too_many_attempts"])
    message = serializers.CharField()
    details = TooManyAttemptsDetails()


class TooManyAttemptsOutput(serializers.Serializer):
    error = TooManyAttemptsBody()


ROLE_KEY = {"type": "string", "enum": RoleKey.values}
HOURS = {"type": "number", "minimum": 0.01, "maximum": 8760}  # stored with two decimals
STAGE_TEXT = {**NON_BLANK, "maxLength": 200}
# The content rules of governance/schemas/workflow_template.schema.json, as the API takes them (absent or null:
# copied from forked_from_id, else the defaults). Unique stage names and stage roles among permitted_roles depend
# on the whole document and are checked by governance.validation (400 with the stage and field).
STAGES_SCHEMA = {
    "type": "array",
    "nullable": True,
    "minItems": 1,
    "maxItems": 20,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "required_role", "sla_hours", "meaning"],
        "properties": {"name": STAGE_TEXT, "required_role": ROLE_KEY, "sla_hours": HOURS, "meaning": STAGE_TEXT},
    },
}
PERMITTED_ROLES_SCHEMA = {"type": "array", "nullable": True, "uniqueItems": True, "items": ROLE_KEY}
SLA_DEFAULTS_SCHEMA = {
    "type": "object",
    "nullable": True,
    "additionalProperties": False,
    "properties": {"sla_hours": HOURS, "escalate_after_hours": HOURS},
}
RETENTION_DAYS_SCHEMA = {"type": "integer", "nullable": True, "minimum": 1, "maximum": 36500}


@extend_schema_field(STAGES_SCHEMA)
class StagesField(serializers.JSONField):
    pass


@extend_schema_field(PERMITTED_ROLES_SCHEMA)
class PermittedRolesField(serializers.JSONField):
    pass


@extend_schema_field(SLA_DEFAULTS_SCHEMA)
class SlaDefaultsField(serializers.JSONField):
    pass


@extend_schema_field(RETENTION_DAYS_SCHEMA)
class RetentionDaysField(serializers.JSONField):
    pass


class TemplateInput(serializers.Serializer):
    """Content is checked by the template rules (JSON Schema + roles), which report per stage and field."""

    team = serializers.SlugField(
        max_length=63,
        required=False,
        allow_null=True,
        help_text="Owning team's slug; null for a platform template (superusers only). Absent: the team of "
        "forked_from_id, else null.",
    )
    status = serializers.ChoiceField(
        choices=["draft", "published"],
        required=False,
        default="draft",
        help_text="published runs the same checks and freezes the same snapshot as /publish.",
    )
    template_key = serializers.SlugField(max_length=100, required=False, allow_blank=True, default="")
    forked_from_id = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True, default=None)
    stages = StagesField(required=False, allow_null=True, default=None)
    permitted_roles = PermittedRolesField(required=False, allow_null=True, default=None)
    sla_defaults = SlaDefaultsField(required=False, allow_null=True, default=None)
    retention_days = RetentionDaysField(required=False, allow_null=True, default=None)
    # Records terms (docs/records-lifecycle.md): absent, copied from the source template (or the defaults); null
    # switches keep-versions or ladder expiry off.
    retention_mode = serializers.ChoiceField(choices=RetentionMode.choices, required=False)
    retention_keep_versions = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    ladder_expires_after_hours = serializers.IntegerField(min_value=1, required=False, allow_null=True)

    # A new template names its key, its name and its stages; a new version or fork names its source (the rest is
    # copied from it).
    schema_any_of = [
        {
            "properties": {"template_key": {"minLength": 1}, "name": NON_BLANK, "stages": {"type": "array"}},
            "required": ["template_key", "name", "stages"],
        },
        {"properties": {"forked_from_id": {"type": "integer", "minimum": 1}}, "required": ["forked_from_id"]},
    ]

    def validate(self, attrs):
        if not attrs.get("template_key") and not attrs.get("forked_from_id"):
            raise serializers.ValidationError({"template_key": ["Give template_key or forked_from_id."]})
        return attrs


class SnapshotOutput(serializers.ModelSerializer):
    drifted = serializers.SerializerMethodField()

    class Meta:
        model = WorkflowTemplateSnapshot
        fields = ["id", "content_sha256", "created_at", "drifted"]

    def get_drifted(self, snapshot) -> bool:
        return snapshot_has_drifted(snapshot)


class TemplateOutput(serializers.ModelSerializer):
    team: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True, help_text="Owning team; null for a platform template."
    )
    forked_from_id = serializers.IntegerField(allow_null=True, read_only=True)
    stages = serializers.JSONField(source="stage_blueprints", read_only=True)
    snapshot_id = serializers.SerializerMethodField()
    created_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = WorkflowTemplate
        fields = [
            "id",
            "team",
            "template_key",
            "version",
            "name",
            "description",
            "status",
            "is_latest",
            "forked_from_id",
            "stages",
            "permitted_roles",
            "sla_defaults",
            "retention_days",
            "retention_mode",
            "retention_keep_versions",
            "ladder_expires_after_hours",
            "snapshot_id",
            "created_by",
            "created_at",
            "updated_at",
            "published_at",
            "archived_at",
        ]

    def get_snapshot_id(self, template) -> int | None:
        snapshots = list(template.snapshots.all())
        return snapshots[0].pk if snapshots else None


class TemplateDetailOutput(TemplateOutput):
    snapshots = SnapshotOutput(many=True, read_only=True)

    class Meta(TemplateOutput.Meta):
        fields = [*TemplateOutput.Meta.fields, "snapshots"]


class AssignmentInput(serializers.Serializer):
    team = serializers.SlugField(
        max_length=63,
        required=False,
        allow_blank=True,
        default="",
        help_text="A team you curate. Absent: the template's own team (required for a platform template).",
    )
    protocol_template = serializers.SlugField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        help_text="Assign to this protocol template inside the team instead of to the whole team.",
    )

    schema_any_of = [
        {"properties": {"team": {"minLength": 1}}, "required": ["team"]},
        {"properties": {"protocol_template": {"minLength": 1}}, "required": ["protocol_template"]},
    ]

    def validate(self, attrs):
        if not attrs["team"] and not attrs["protocol_template"]:
            raise serializers.ValidationError({"team": ["Give team, protocol_template or both."]})
        return attrs


class AssignmentOutput(serializers.ModelSerializer):
    template_id = serializers.IntegerField(read_only=True)
    template_key = serializers.CharField(source="template.template_key", read_only=True)
    team: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    protocol_template = serializers.CharField(source="protocol_template_key", read_only=True)
    created_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = WorkflowTemplateAssignment
        fields = ["id", "template_id", "template_key", "team", "protocol_template", "created_by", "created_at"]


class BaselineInput(serializers.Serializer):
    execution_id = serializers.IntegerField(min_value=1)
    title = serializers.CharField(max_length=300)
    summary = serializers.CharField(required=False, allow_blank=True, default="", max_length=20000)
    parameters = serializers.DictField(required=False, default=dict)
    reviewers = serializers.ListField(child=serializers.CharField(max_length=150), allow_empty=False, max_length=20)


class BaselineDecisionInput(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class BaselineRollbackInput(serializers.Serializer):
    reason = serializers.CharField(max_length=5000)
    reinstate_baseline_id = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)


class BaselineEventOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_username", read_only=True)

    class Meta:
        model = GovernanceBaselineEvent
        fields = ["id", "event_type", "from_status", "to_status", "actor", "payload", "created_at"]


class BaselineOutput(serializers.ModelSerializer):
    team: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    execution_id = serializers.IntegerField(read_only=True)
    protocol_template = serializers.CharField(source="protocol_template_key", read_only=True)
    submitted_by: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reviewers: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", many=True, read_only=True
    )
    reviewed_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    published_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    rolled_back_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = GovernanceBaseline
        fields = [
            "id",
            "team",
            "execution_id",
            "protocol_template",
            "version",
            "title",
            "summary",
            "parameters",
            "status",
            "is_current",
            "submitted_by",
            "reviewers",
            "reviewed_by",
            "reviewed_at",
            "review_comment",
            "published_by",
            "published_at",
            "rolled_back_by",
            "rolled_back_at",
            "rollback_reason",
            "created_at",
            "updated_at",
        ]


class BaselineDetailOutput(BaselineOutput):
    events = BaselineEventOutput(many=True, read_only=True)

    class Meta(BaselineOutput.Meta):
        fields = [*BaselineOutput.Meta.fields, "events"]


class ClearanceInput(serializers.Serializer):
    level = serializers.ChoiceField(choices=Classification.choices)


class ClearancePolicyInput(serializers.Serializer):
    policy = serializers.ChoiceField(choices=ClearancePolicy.choices)


class ClearancePolicyOutput(serializers.Serializer):
    team = serializers.CharField()
    policy = serializers.ChoiceField(choices=ClearancePolicy.choices, help_text="The team's policy above a clearance.")


class ClearanceOutput(serializers.Serializer):
    team = serializers.CharField()
    username = serializers.CharField()
    level = serializers.ChoiceField(choices=Classification.choices)
    policy = serializers.ChoiceField(choices=ClearancePolicy.choices, help_text="The team's policy above a clearance.")
