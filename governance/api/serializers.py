from rest_framework import serializers

from governance.selectors.templates import snapshot_has_drifted


class TokenInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()


class TemplateInput(serializers.Serializer):
    """Content is checked by the template rules (JSON Schema + roles), which report per stage and field."""

    template_key = serializers.SlugField(max_length=100, required=False, allow_blank=True, default="")
    forked_from_id = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True, default=None)
    stages = serializers.JSONField(required=False, default=None)
    permitted_roles = serializers.JSONField(required=False, default=None)
    sla_defaults = serializers.JSONField(required=False, default=None)
    retention_days = serializers.JSONField(required=False, default=None)

    def validate(self, attrs):
        if not attrs.get("template_key") and not attrs.get("forked_from_id"):
            raise serializers.ValidationError({"template_key": ["Give template_key or forked_from_id."]})
        return attrs


class SnapshotOutput(serializers.Serializer):
    id = serializers.IntegerField()
    content_sha256 = serializers.CharField()
    created_at = serializers.DateTimeField()
    drifted = serializers.SerializerMethodField()

    def get_drifted(self, snapshot) -> bool:
        return snapshot_has_drifted(snapshot)


class TemplateOutput(serializers.Serializer):
    id = serializers.IntegerField()
    template_key = serializers.CharField()
    version = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    status = serializers.CharField()
    is_latest = serializers.BooleanField()
    forked_from_id = serializers.IntegerField(allow_null=True)
    stages = serializers.JSONField(source="stage_blueprints")
    permitted_roles = serializers.JSONField()
    sla_defaults = serializers.JSONField()
    retention_days = serializers.IntegerField()
    snapshot_id = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    published_at = serializers.DateTimeField(allow_null=True)
    archived_at = serializers.DateTimeField(allow_null=True)

    def get_snapshot_id(self, template) -> int | None:
        if hasattr(template, "latest_snapshot_id"):
            return template.latest_snapshot_id
        snapshots = list(template.snapshots.all())
        return snapshots[0].pk if snapshots else None


class TemplateDetailOutput(TemplateOutput):
    snapshots = SnapshotOutput(many=True, read_only=True)


class AssignmentInput(serializers.Serializer):
    team = serializers.SlugField(max_length=63, required=False, allow_blank=True, default="")
    protocol_template = serializers.SlugField(max_length=100, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if bool(attrs["team"]) == bool(attrs["protocol_template"]):
            raise serializers.ValidationError({"team": ["Give exactly one of team or protocol_template."]})
        return attrs


class AssignmentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    template_id = serializers.IntegerField()
    template_key = serializers.CharField(source="template.template_key")
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    protocol_template = serializers.CharField(source="protocol_template_key")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    created_at = serializers.DateTimeField()


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


class BaselineEventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    event_type = serializers.CharField()
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    actor = serializers.CharField(source="actor_username")
    payload = serializers.JSONField()
    created_at = serializers.DateTimeField()


class BaselineOutput(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    execution_id = serializers.IntegerField()
    protocol_template = serializers.CharField(source="protocol_template_key")
    version = serializers.IntegerField(allow_null=True)
    title = serializers.CharField()
    summary = serializers.CharField()
    parameters = serializers.JSONField()
    status = serializers.CharField()
    is_current = serializers.BooleanField()
    submitted_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reviewers = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    reviewed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reviewed_at = serializers.DateTimeField(allow_null=True)
    review_comment = serializers.CharField()
    published_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    published_at = serializers.DateTimeField(allow_null=True)
    rolled_back_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    rolled_back_at = serializers.DateTimeField(allow_null=True)
    rollback_reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class BaselineDetailOutput(BaselineOutput):
    events = BaselineEventOutput(many=True, read_only=True)
