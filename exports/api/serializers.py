from rest_framework import serializers

from exports.choices import EvidenceKind
from exports.models import Evidence, Execution, ExecutionEvent
from governance.choices import Classification

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_.:-]{0,119}$"


class ExecutionInput(serializers.Serializer):
    title = serializers.CharField(max_length=300)
    team = serializers.SlugField(max_length=63)
    protocol_template = serializers.SlugField(max_length=100, required=False, allow_blank=True, default="")


class ExecutionOutput(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    protocol_template = serializers.CharField(source="protocol_template_key")
    event_count = serializers.IntegerField(source="last_sequence")

    class Meta:
        model = Execution
        fields = [
            "id",
            "title",
            "team",
            "protocol_template",
            "status",
            "owner",
            "event_count",
            "created_at",
            "updated_at",
            "started_at",
            "completed_at",
        ]


class EventInput(serializers.Serializer):
    event_type = serializers.RegexField(EVENT_TYPE_PATTERN, max_length=120)
    payload = serializers.DictField(required=False, default=dict)
    occurred_at = serializers.DateTimeField(required=False)


class EventOutput(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ExecutionEvent
        fields = ["id", "execution_id", "sequence", "event_type", "actor", "payload", "occurred_at", "recorded_at"]


class FileUploadInput(serializers.Serializer):
    file = serializers.FileField()
    title = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    classification = serializers.ChoiceField(Classification.choices, required=False, default=Classification.INTERNAL)


class NotebookEntryInput(serializers.Serializer):
    execution = serializers.IntegerField(min_value=1)
    title = serializers.CharField(max_length=300)
    body = serializers.CharField(max_length=1_000_000, trim_whitespace=False)
    classification = serializers.ChoiceField(Classification.choices, required=False, default=Classification.INTERNAL)


class StructuredEvidenceInput(serializers.Serializer):
    execution = serializers.IntegerField(min_value=1)
    kind = serializers.ChoiceField(
        [EvidenceKind.ANALYTICS_SNAPSHOT, EvidenceKind.QC_METRIC, EvidenceKind.REMEDIATION_REPORT]
    )
    title = serializers.CharField(max_length=300)
    data = serializers.JSONField(required=False, allow_null=True, default=None)
    body = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    classification = serializers.ChoiceField(Classification.choices, required=False, default=Classification.INTERNAL)


class EvidenceOutput(serializers.ModelSerializer):
    class Meta:
        model = Evidence
        fields = [
            "id",
            "execution_id",
            "kind",
            "title",
            "size",
            "sha256",
            "classification",
            "original_filename",
            "content_type",
            "created_at",
        ]


class EvidenceDescriptor(serializers.Serializer):
    kind = serializers.CharField()
    id = serializers.IntegerField()
    title = serializers.CharField()
    size = serializers.IntegerField(required=False, allow_null=True, default=None)
    sha256 = serializers.CharField(required=False, allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class OverrideInput(serializers.Serializer):
    step = serializers.CharField(max_length=200)
    field = serializers.CharField(max_length=200)
    value = serializers.JSONField()
    reason = serializers.CharField(max_length=2000)


class CoachingNoteInput(serializers.Serializer):
    body = serializers.CharField(max_length=20_000, trim_whitespace=False)
