import re
from typing import cast

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from config.middleware import MAX_ID
from config.schema import NOT_NULL
from exports.choices import RESERVED_EVENT_PREFIXES, EvidenceKind, LegalHoldScope, RetentionMode
from exports.models import Evidence, Execution, ExecutionEvent
from governance.choices import Classification

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_.:-]{0,119}$"
# The schema also leaves out the types under RESERVED_EVENT_PREFIXES: the server writes those only, and refuses
# them from clients with their own code (400 reserved_event_type, exports.services.executions).
CLIENT_EVENT_TYPE_PATTERN = (
    r"^(?!(?:" + "|".join(re.escape(prefix) for prefix in RESERVED_EVENT_PREFIXES) + r"))" + EVENT_TYPE_PATTERN[1:]
)


@extend_schema_field({"type": "string", "pattern": CLIENT_EVENT_TYPE_PATTERN, "maxLength": 120})
class EventTypeField(serializers.RegexField):
    def __init__(self, **kwargs):
        super().__init__(EVENT_TYPE_PATTERN, max_length=120, **kwargs)


class ExecutionInput(serializers.Serializer):
    title = serializers.CharField(max_length=300)
    team = serializers.SlugField(max_length=63)
    protocol_template = serializers.SlugField(max_length=100, required=False, allow_blank=True, default="")


class ExecutionOutput(serializers.ModelSerializer):
    team: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="username", read_only=True)
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
    event_type = EventTypeField()
    payload = serializers.DictField(required=False, default=dict)
    occurred_at = serializers.DateTimeField(required=False)


class EventOutput(serializers.ModelSerializer):
    actor: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = ExecutionEvent
        fields = ["id", "execution_id", "sequence", "event_type", "actor", "payload", "occurred_at", "recorded_at"]


class FileUploadInput(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, help_text="Any bytes, none included; sha256 is computed.")
    title = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    classification = serializers.ChoiceField(Classification.choices, required=False, default=Classification.INTERNAL)


class NotebookEntryInput(serializers.Serializer):
    execution = serializers.IntegerField(min_value=1)
    title = serializers.CharField(max_length=300)
    body = serializers.CharField(max_length=1_000_000, trim_whitespace=False)
    classification = serializers.ChoiceField(Classification.choices, required=False, default=Classification.INTERNAL)


JSON_KINDS = [EvidenceKind.ANALYTICS_SNAPSHOT.value, EvidenceKind.QC_METRIC.value]


class StructuredEvidenceInput(serializers.Serializer):
    execution = serializers.IntegerField(min_value=1)
    kind = serializers.ChoiceField(
        [EvidenceKind.ANALYTICS_SNAPSHOT, EvidenceKind.QC_METRIC, EvidenceKind.REMEDIATION_REPORT]
    )
    title = serializers.CharField(max_length=300)
    data = serializers.JSONField(required=False, allow_null=True, default=None)  # type: ignore[assignment]
    body = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    classification = serializers.ChoiceField(Classification.choices, required=False, default=Classification.INTERNAL)

    # Every kind may carry JSON (snapshots and QC metrics must); a remediation report may carry Markdown instead.
    # (``not`` keeps the schema generator from folding this partial enum into the field's own.)
    schema_any_of = [
        {"properties": {"data": NOT_NULL}, "required": ["data"]},
        {
            "properties": {"kind": {"not": {"enum": JSON_KINDS}}, "body": {"type": "string", "minLength": 1}},
            "required": ["body"],
        },
    ]


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
            "retain_until",
            "retention_mode",
        ]
        extra_kwargs = {
            "retain_until": {
                "help_text": "When retention may purge the stored bytes (docs/records-lifecycle.md); null: kept until "
                "a rule says otherwise."
            },
        }


class EvidenceDescriptor(serializers.Serializer):
    kind = serializers.CharField()
    id = serializers.IntegerField()
    title = serializers.CharField(
        source="shown_title", help_text="A marker, `[WITHHELD: <label> evidence]`, when `withheld`."
    )
    size = serializers.IntegerField(required=False, allow_null=True, default=None)
    sha256 = serializers.CharField(
        source="shown_sha256", required=False, allow_null=True, default=None, help_text="Null when `withheld`."
    )
    created_at = serializers.DateTimeField()
    classification = serializers.ChoiceField(
        Classification.choices, allow_null=True, help_text="The evidence's label; null for a timeline event."
    )
    withheld = serializers.BooleanField(help_text="Labelled above your clearance in the team (docs/clearance.md).")


class OverrideInput(serializers.Serializer):
    step = serializers.CharField(max_length=200)
    field = serializers.CharField(max_length=200)
    value = serializers.JSONField()
    reason = serializers.CharField(max_length=2000)


class CoachingNoteInput(serializers.Serializer):
    body = serializers.CharField(max_length=20_000, trim_whitespace=False)


# --- Narrative exports ----------------------------------------------------------------------------------------


class EvidenceRefInput(serializers.Serializer):
    kind = serializers.ChoiceField(EvidenceKind.choices)
    id = serializers.IntegerField(min_value=1)


class ExportCreateInput(serializers.Serializer):
    evidence = serializers.ListField(child=EvidenceRefInput(), allow_empty=True, max_length=10_000)
    template_key = serializers.SlugField(max_length=100, required=False, allow_blank=True, default="")
    notes = serializers.CharField(
        max_length=20_000, required=False, allow_blank=True, default="", trim_whitespace=False
    )
    classification = serializers.ChoiceField(Classification.choices, required=False, allow_null=True, default=None)


class ArtifactOutput(serializers.Serializer):
    id = serializers.IntegerField()
    bag_name = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    compression = serializers.CharField()
    signing_key_id = serializers.CharField(source="signing_key.key_id")
    created_at = serializers.DateTimeField()
    retain_until = serializers.DateTimeField(allow_null=True)
    retention_mode = serializers.CharField()
    expired_at = serializers.DateTimeField(allow_null=True)
    integrity_failed_at = serializers.DateTimeField(allow_null=True)
    storage_tier = serializers.CharField()
    fixity_status = serializers.CharField()
    fixity_checked_at = serializers.DateTimeField(allow_null=True)
    state = serializers.SerializerMethodField()

    def get_state(self, artifact) -> str:
        if artifact.expired_at is not None:
            return "expired"
        if artifact.integrity_failed_at is not None:
            return "integrity_failed"
        return "available"


class AttachmentOutput(serializers.Serializer):
    kind = serializers.CharField()
    id = serializers.SerializerMethodField()
    title = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    bundle_path = serializers.SerializerMethodField()

    def get_id(self, attachment) -> int:
        return attachment.evidence_id or attachment.event_id

    def get_bundle_path(self, attachment) -> str:
        return f"data/{attachment.bundle_path}"


class ExportOutput(serializers.Serializer):
    """One export version. ``context["extras"]`` holds representation-hook fields by export id (``ladder``)."""

    id = serializers.IntegerField()
    execution_id = serializers.IntegerField()
    version = serializers.IntegerField()
    status = serializers.CharField()
    narrative_digest = serializers.CharField()
    template_snapshot_id = serializers.IntegerField(allow_null=True)
    template = serializers.SerializerMethodField()
    ladder = serializers.SerializerMethodField()
    packaging_queue_state = serializers.JSONField()
    packaging_attempts = serializers.IntegerField()
    artifact = serializers.SerializerMethodField()
    author = serializers.CharField(source="author.username")
    classification = serializers.CharField()
    notes = serializers.CharField()
    attachments = AttachmentOutput(many=True)
    redaction_counts = serializers.JSONField()
    events_through_sequence = serializers.IntegerField()
    retain_until = serializers.DateTimeField(allow_null=True)
    retention_mode = serializers.ChoiceField(choices=RetentionMode.choices)
    retention_keep_versions = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    queued_at = serializers.DateTimeField(allow_null=True)
    packaged_at = serializers.DateTimeField(allow_null=True)
    withheld = serializers.SerializerMethodField(
        help_text="The export is above your clearance and answered with metadata only: notes and attachments are "
        "left out (docs/clearance.md). Under the `redact` policy, only the evidence above it is withheld."
    )

    def _extras(self, export) -> dict:
        return self.context.get("extras", {}).get(export.pk, {"ladder": None})

    def get_template(self, export) -> dict | None:
        snapshot = export.template_snapshot
        if snapshot is None:
            return None
        return {"snapshot_id": snapshot.pk, "template_key": snapshot.template_key, "version": snapshot.version}

    def get_ladder(self, export) -> dict | None:
        return self._extras(export).get("ladder")

    def _reader(self, export):
        """The reader's view of an export above their clearance (``None``: they read it in full)."""
        return self.context.get("readers", {}).get(export.pk)

    def get_withheld(self, export) -> bool:
        reader = self._reader(export)
        return reader is not None and reader.metadata_only

    def get_artifact(self, export) -> dict | None:
        from exports.selectors.narrative_exports import export_artifact

        artifact = export_artifact(export)
        return ArtifactOutput(artifact).data if artifact else None

    def to_representation(self, export):
        data = super().to_representation(export)
        for key, value in self._extras(export).items():
            data.setdefault(key, value)
        reader = self._reader(export)
        if reader is None:
            return data
        if reader.metadata_only:  # above the reader's clearance: metadata only (docs/clearance.md)
            data.update(notes="", attachments=[])
        else:
            data["attachments"] = reader.manifest(data["attachments"])
        return data


class LifecycleEventOutput(serializers.Serializer):
    sequence = serializers.IntegerField()
    event_type = serializers.CharField()
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    occurred_at = serializers.DateTimeField()
    payload = serializers.JSONField()


class PackagingRunOutput(serializers.Serializer):
    id = serializers.IntegerField()
    attempt = serializers.IntegerField()
    status = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    bytes = serializers.IntegerField(allow_null=True)
    error_code = serializers.CharField()
    error_message = serializers.CharField()


class ExportVersionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()
    status = serializers.CharField()
    narrative_digest = serializers.CharField()
    created_at = serializers.DateTimeField()


class ExportDetailOutput(ExportOutput):
    """The detail view adds the version history, the lifecycle and the packaging runs."""

    versions = serializers.SerializerMethodField()
    lifecycle = serializers.SerializerMethodField()
    packaging_runs = serializers.SerializerMethodField()
    legal_holds = serializers.SerializerMethodField(
        help_text="The active legal holds covering this export: its own and its team's (docs/records-lifecycle.md)."
    )
    narrative = serializers.SerializerMethodField(
        help_text="The narrative as signed; with the evidence above your clearance replaced by a marker under the "
        "`redact` policy, null when the export is withheld (docs/clearance.md)."
    )

    def get_legal_holds(self, export) -> list[dict]:
        from exports.selectors.holds import holds_covering_export

        return cast("list[dict]", LegalHoldSummaryOutput(holds_covering_export(export), many=True).data)

    def get_narrative(self, export) -> str | None:
        reader = self._reader(export)
        return export.narrative_markdown if reader is None else reader.narrative(export)

    def get_versions(self, export) -> list[dict]:
        from exports.selectors.narrative_exports import export_versions

        return cast("list[dict]", ExportVersionOutput(export_versions(export=export), many=True).data)

    def get_lifecycle(self, export) -> list[dict]:
        from exports.selectors.narrative_exports import export_lifecycle

        return cast("list[dict]", LifecycleEventOutput(export_lifecycle(export=export), many=True).data)

    def get_packaging_runs(self, export) -> list[dict]:
        from exports.selectors.narrative_exports import packaging_runs_for_export

        return cast("list[dict]", PackagingRunOutput(packaging_runs_for_export(export=export), many=True).data)


class ArtifactLinkOutput(serializers.Serializer):
    url = serializers.CharField()
    expires_at = serializers.DateTimeField()


class SigningKeyOutput(serializers.Serializer):
    key_id = serializers.CharField()
    algorithm = serializers.CharField()
    public_key_pem = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    retired_at = serializers.DateTimeField(allow_null=True)


class SigningKeysOutput(serializers.Serializer):
    keys = SigningKeyOutput(many=True)


class PackagingRunSummaryOutput(PackagingRunOutput):
    export_id = serializers.IntegerField()
    execution_id = serializers.IntegerField()
    version = serializers.IntegerField()


class PackagingJobsOutput(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    counts = serializers.DictField(child=serializers.IntegerField())
    oldest_queued_at = serializers.DateTimeField(allow_null=True)
    oldest_queued_age_seconds = serializers.IntegerField(allow_null=True)
    running = serializers.IntegerField()
    failures_by_error_code = serializers.DictField(child=serializers.IntegerField())
    recent_runs = PackagingRunSummaryOutput(many=True)


class LegalHoldSummaryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    scope = serializers.ChoiceField(choices=LegalHoldScope.choices)
    placed_by = serializers.CharField(source="placed_by.username")
    placed_at = serializers.DateTimeField()


class LegalHoldOutput(serializers.Serializer):
    """A legal hold (docs/records-lifecycle.md): active while ``released_at`` is null."""

    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    scope = serializers.ChoiceField(choices=LegalHoldScope.choices)
    export_id = serializers.IntegerField(allow_null=True)
    execution_id = serializers.SerializerMethodField()
    reason = serializers.CharField()
    active = serializers.BooleanField(source="is_active")
    placed_by = serializers.CharField(source="placed_by.username")
    placed_at = serializers.DateTimeField()
    released_by = serializers.CharField(source="released_by.username", allow_null=True, default=None)
    released_at = serializers.DateTimeField(allow_null=True)
    release_reason = serializers.CharField()

    def get_execution_id(self, hold) -> int | None:
        return hold.export.execution_id if hold.export is not None else None


class _LegalHoldInput(serializers.Serializer):
    team = serializers.SlugField(max_length=63, help_text="The team's slug.")
    reason = serializers.CharField(max_length=4000, help_text="Why the records are held (required).")


class TeamLegalHoldInput(_LegalHoldInput):
    scope = serializers.ChoiceField(choices=[LegalHoldScope.TEAM], help_text="Every record of the team.")


class ExportLegalHoldInput(_LegalHoldInput):
    scope = serializers.ChoiceField(choices=[LegalHoldScope.EXPORT], help_text="One export of the team.")
    export_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)


# How a hold request reads in the schema: a team-wide hold names no export, an export hold names one.
LEGAL_HOLD_SCHEMA = PolymorphicProxySerializer(
    component_name="LegalHoldInput",
    serializers=[TeamLegalHoldInput, ExportLegalHoldInput],
    resource_type_field_name=None,  # the two ``scope`` enums already tell them apart
)


def legal_hold_input_for(data) -> type[_LegalHoldInput]:
    """The serializer a hold request is validated with, by its ``scope``."""
    scope = data.get("scope") if isinstance(data, dict) else None
    return ExportLegalHoldInput if scope == LegalHoldScope.EXPORT else TeamLegalHoldInput


class LegalHoldReleaseInput(serializers.Serializer):
    reason = serializers.CharField(max_length=4000, help_text="Why the hold ends (required).")


class RetentionInput(serializers.Serializer):
    retain_until = serializers.DateTimeField(help_text="The new retention date (ISO 8601, with a zone).")
    reason = serializers.CharField(
        max_length=4000, required=False, allow_blank=True, default="", help_text="Required to shorten."
    )


class RetentionOutput(serializers.Serializer):
    export_id = serializers.IntegerField(source="pk")
    retain_until = serializers.DateTimeField(allow_null=True)
    retention_mode = serializers.ChoiceField(choices=RetentionMode.choices)
    status = serializers.CharField()
