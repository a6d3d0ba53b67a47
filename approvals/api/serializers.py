from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from approvals.choices import AuditReviewStatus, Decision, EscalationOutcome
from approvals.models import ApprovalHistory, ApprovalSignature
from approvals.selectors import HISTORY_COLUMNS, SIGNATURE_COLUMNS, represent, stage_representation
from approvals.services.signing_controls import STATEMENTS
from governance.choices import Classification


class DecisionInput(serializers.Serializer):
    decision = serializers.ChoiceField(Decision.choices)
    username = serializers.CharField(
        max_length=150,
        required=False,
        allow_blank=True,
        default="",
        help_text="The signer's username: required for the first signature of a session (an API token or a browser "
        "session) and the first after `DOSSIER_SIGNING_SESSION_MINUTES` without one (docs/part11.md).",
    )
    password = serializers.CharField(max_length=4096, trim_whitespace=False, allow_blank=True)
    meaning = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    comment = serializers.CharField(max_length=10_000, required=False, allow_blank=True, default="")
    expected_stage_id = serializers.IntegerField(min_value=1)


class ApproveDecisionInput(DecisionInput):
    decision = serializers.ChoiceField([Decision.APPROVE])


class RejectDecisionInput(DecisionInput):
    decision = serializers.ChoiceField([Decision.REJECT])
    comment = serializers.CharField(max_length=10_000, help_text="Why: a rejection needs one.")


# How DecisionInput reads in the schema: a rejection must say why (the rule approvals.services.ladders enforces).
DECISION_SCHEMA = PolymorphicProxySerializer(
    component_name="Decision",
    serializers=[ApproveDecisionInput, RejectDecisionInput],
    resource_type_field_name=None,  # the two ``decision`` enums already tell them apart
)


class DelegateInput(serializers.Serializer):
    assignee = serializers.CharField(max_length=150)
    reason = serializers.CharField(max_length=2000)
    due_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ResetInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


def signature_representation(signature: ApprovalSignature) -> dict[str, Any]:
    """One signature as the API shows it (datetimes are rendered by the JSON renderer, in UTC with ``Z``)."""
    return represent(signature, SIGNATURE_COLUMNS)


def history_representation(row: ApprovalHistory) -> dict[str, Any]:
    """One history row; ``actor``/``from_assignee``/``to_assignee`` should be loaded (``select_related``)."""
    return represent(row, HISTORY_COLUMNS)


def export_summary(export) -> dict:
    return {
        "id": export.pk,
        "execution_id": export.execution_id,
        "version": export.version,
        "status": export.status,
        "narrative_digest": export.narrative_digest,
        "packaging_queue_state": export.packaging_queue_state,
    }


def ladder_full(ladder, *, stages=None, signatures=None, history=None) -> dict | None:
    """A ladder loaded by ``ladder_detail``: stages with their dates, every signature and the whole history. A
    caller holding them passes the ``stages``, the ``signatures`` as represented and the ``ladder_history_rows``."""
    if ladder is None:
        return None
    rows = []
    for stage in ladder.stages.all() if stages is None else stages:
        rows.append(
            {
                **stage_representation(stage),
                "meaning": stage.meaning,
                "reject_meaning": stage.reject_meaning,
                "sla_hours": stage.sla_hours,
                "iteration": stage.iteration,
                "started_at": stage.started_at,
                "completed_at": stage.completed_at,
                "overdue_at": stage.overdue_at,
                "escalated_at": stage.escalated_at,
            }
        )
    return {
        "status": ladder.status,
        "iteration": ladder.iteration,
        "template_snapshot_id": ladder.template_snapshot_id,
        "finalized_at": ladder.finalized_at,
        "stages": rows,
        "signatures": (
            [signature_representation(signature) for signature in ladder.signatures.all()]
            if signatures is None
            else signatures
        ),
        "history": [history_representation(row) for row in ladder.history.all()] if history is None else history,
    }


class StageOutput(serializers.Serializer):
    id = serializers.IntegerField()
    index = serializers.IntegerField()
    name = serializers.CharField()
    required_role = serializers.CharField()
    status = serializers.CharField()
    assignee = serializers.CharField(allow_null=True, help_text="Username; null when anyone holding the role may sign.")
    due_at = serializers.DateTimeField(allow_null=True)


class StageDetailOutput(StageOutput):
    meaning = serializers.CharField(help_text="The meaning an approval of this stage signs.")
    reject_meaning = serializers.CharField(help_text="The meaning a rejection of this stage signs.")
    sla_hours = serializers.IntegerField(allow_null=True)
    iteration = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    overdue_at = serializers.DateTimeField(allow_null=True)
    escalated_at = serializers.DateTimeField(allow_null=True)


class SignatureOutput(serializers.Serializer):
    id = serializers.IntegerField()
    stage_id = serializers.IntegerField(allow_null=True)
    stage_index = serializers.IntegerField()
    stage_name = serializers.CharField()
    required_role = serializers.CharField()
    iteration = serializers.IntegerField()
    decision = serializers.CharField()
    signer = serializers.CharField(allow_null=True)
    printed_name = serializers.CharField()
    signed_as = serializers.CharField()
    meaning = serializers.CharField()
    comment = serializers.CharField()
    signed_at = serializers.DateTimeField()
    narrative_digest = serializers.CharField()
    superseded = serializers.BooleanField()
    superseded_at = serializers.DateTimeField(allow_null=True)
    superseded_reason = serializers.CharField()


class HistoryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    stage_id = serializers.IntegerField(allow_null=True)
    action = serializers.CharField()
    actor = serializers.CharField(allow_null=True)
    from_assignee = serializers.CharField(allow_null=True)
    to_assignee = serializers.CharField(allow_null=True)
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    reason = serializers.CharField()
    iteration = serializers.IntegerField()
    payload = serializers.JSONField()
    created_at = serializers.DateTimeField()


class LadderSummaryOutput(serializers.Serializer):
    status = serializers.CharField()
    iteration = serializers.IntegerField()
    stages = StageOutput(many=True)


class LadderDetailOutput(serializers.Serializer):
    """A ladder as ``ladder_full`` builds it: stages with their dates, every signature and the whole history."""

    status = serializers.CharField()
    iteration = serializers.IntegerField()
    template_snapshot_id = serializers.IntegerField(allow_null=True)
    finalized_at = serializers.DateTimeField(allow_null=True)
    stages = StageDetailOutput(many=True)
    signatures = SignatureOutput(many=True)
    history = HistoryOutput(many=True)


class ExportSummaryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    execution_id = serializers.IntegerField()
    version = serializers.IntegerField()
    status = serializers.CharField()
    narrative_digest = serializers.CharField()
    packaging_queue_state = serializers.JSONField()


class ApprovalRecordOutput(serializers.Serializer):
    """The approval record of one export (``/approvals``, and the answer to a delegation or a reset)."""

    export = ExportSummaryOutput()
    ladder = LadderDetailOutput(allow_null=True)


class DecisionOutput(ApprovalRecordOutput):
    """The approval record after a signature, the signature itself and whether packaging was queued."""

    signature = SignatureOutput()
    dispatched = serializers.BooleanField(help_text="Whether the final approval queued the export for packaging.")


class TemplateSummaryOutput(serializers.Serializer):
    snapshot_id = serializers.IntegerField()
    template_key = serializers.CharField()
    version = serializers.IntegerField()


class GovernanceExportOutput(serializers.Serializer):
    id = serializers.IntegerField()
    execution_id = serializers.IntegerField()
    execution_title = serializers.CharField(source="execution.title")
    team = serializers.CharField(source="execution.team.slug")
    version = serializers.IntegerField()
    status = serializers.CharField()
    author = serializers.CharField(source="author.username")
    template = serializers.SerializerMethodField()
    narrative_digest = serializers.CharField()
    packaging_queue_state = serializers.JSONField()
    overdue = serializers.BooleanField(source="is_overdue")
    ladder = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    queued_at = serializers.DateTimeField(allow_null=True)
    packaged_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(TemplateSummaryOutput(allow_null=True))
    def get_template(self, export) -> dict | None:
        snapshot = export.template_snapshot
        if snapshot is None:
            return None
        return {"snapshot_id": snapshot.pk, "template_key": snapshot.template_key, "version": snapshot.version}

    @extend_schema_field(LadderSummaryOutput(allow_null=True))
    def get_ladder(self, export) -> dict | None:
        return self.context["ladders"].get(export.pk)


class GovernanceExportDetailOutput(GovernanceExportOutput):
    approvals = serializers.SerializerMethodField()

    @extend_schema_field(LadderDetailOutput(allow_null=True))
    def get_approvals(self, export) -> dict | None:
        return self.context["approvals"]


class GuardrailOutput(serializers.Serializer):
    status = serializers.CharField()
    guardrail_status = serializers.CharField()
    pending_stage = serializers.JSONField(allow_null=True)
    forecast = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()
    attempts = serializers.IntegerField()
    iteration = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()


class DispatchOutput(serializers.Serializer):
    queued = serializers.BooleanField()
    export = ExportSummaryOutput()
    guardrail = GuardrailOutput()


class ClassificationInput(serializers.Serializer):
    classification = serializers.ChoiceField(choices=Classification.choices)


class ClassificationOutput(serializers.Serializer):
    export_id = serializers.IntegerField()
    classification = serializers.ChoiceField(choices=Classification.choices)


class EvidenceClassificationOutput(serializers.Serializer):
    evidence_id = serializers.IntegerField()
    kind = serializers.CharField()
    classification = serializers.ChoiceField(choices=Classification.choices)
    raised_exports = serializers.ListField(
        child=serializers.IntegerField(), help_text="Exports citing the evidence that were raised to its new label."
    )


class EscalationInput(serializers.Serializer):
    stage_id = serializers.IntegerField(min_value=1, help_text="A stage of this export's ladder, waiting to be signed.")
    contacted = serializers.CharField(max_length=300, help_text="Who was contacted, and how (e.g. 'qa-lead by phone').")
    outcome = serializers.ChoiceField(EscalationOutcome.choices, help_text="What came of it (docs/escalations.md).")
    next_check_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="When to look again; must be in the future (UTC)."
    )


class EscalationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    export_id = serializers.IntegerField(source="ladder.export_id")
    stage_id = serializers.IntegerField()
    stage = serializers.CharField(source="stage.name")
    contacted = serializers.CharField()
    outcome = serializers.ChoiceField(EscalationOutcome.choices)
    outcome_label = serializers.CharField(source="get_outcome_display")
    next_check_at = serializers.DateTimeField(allow_null=True)
    recorded_at = serializers.DateTimeField()
    recorded_by = serializers.CharField(source="actor.username")
    timeline_sequence = serializers.IntegerField(source="event_sequence")


class PreviewStageOutput(serializers.Serializer):
    position = serializers.IntegerField()
    name = serializers.CharField()
    required_role = serializers.CharField()
    meaning = serializers.CharField()
    sla_hours = serializers.FloatField()
    open_load = serializers.IntegerField()
    queue_delay_hours = serializers.FloatField()
    activated_at = serializers.DateTimeField()
    projected_start = serializers.DateTimeField()
    projected_due = serializers.DateTimeField()
    escalate_at = serializers.DateTimeField(allow_null=True)


class PreviewTemplateOutput(serializers.Serializer):
    template_key = serializers.CharField()
    version = serializers.IntegerField()
    content_sha256 = serializers.CharField()
    # The API names this field ``source``, the name of a Field attribute the stubs type: the serializer's metaclass
    # takes declared fields off the class, so nothing is shadowed at run time.
    source = serializers.CharField(  # type: ignore[assignment]
        help_text="How the snapshot was chosen: protocol, team or default."
    )


class PreviewWarningOutput(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class PreviewOutput(serializers.Serializer):
    """What a new export of this execution would get: the ladder projected from now, the narrative, warnings."""

    execution_id = serializers.IntegerField()
    template_snapshot_id = serializers.IntegerField(allow_null=True)
    template = PreviewTemplateOutput(allow_null=True)
    previewed_at = serializers.DateTimeField()
    stages = PreviewStageOutput(many=True)
    narrative_markdown = serializers.CharField()
    evidence = serializers.ListField(child=serializers.DictField(), help_text="The evidence manifest.")
    warnings = PreviewWarningOutput(many=True)


class CertificationInput(serializers.Serializer):
    password = serializers.CharField(max_length=4096, trim_whitespace=False, allow_blank=True)
    statement_version = serializers.ChoiceField(
        choices=sorted(STATEMENTS), help_text="The version of the statement certified (GET gives the current one)."
    )


class StatementOutput(serializers.Serializer):
    version = serializers.CharField()
    text = serializers.CharField()
    digest = serializers.CharField(help_text="sha256 of the text.")


class CertificationOutput(serializers.Serializer):
    certified = serializers.BooleanField()
    statement_version = serializers.CharField(allow_null=True)
    statement_digest = serializers.CharField(allow_null=True)
    certified_at = serializers.DateTimeField(allow_null=True)
    current_statement = StatementOutput()


class AuditReviewQuery(serializers.Serializer):
    status = serializers.ChoiceField(AuditReviewStatus.choices, required=False)
    team = serializers.SlugField(required=False, help_text="Team slug (one of your teams).")
    overdue = serializers.BooleanField(required=False, help_text="Only open reviews past their due date.")
    page = serializers.IntegerField(required=False, min_value=1)


class AuditReviewOutput(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField(help_text="Exclusive.")
    status = serializers.ChoiceField(AuditReviewStatus.choices)
    reviewer = serializers.CharField(source="reviewer.username", allow_null=True, default=None)
    opened_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()
    overdue = serializers.BooleanField()
    completed_by = serializers.CharField(source="completed_by.username", allow_null=True, default=None)
    completed_at = serializers.DateTimeField(allow_null=True)
    printed_name = serializers.CharField()
    meaning = serializers.CharField()
    comment = serializers.CharField()
    events_total = serializers.IntegerField()
    exceptions_total = serializers.IntegerField()
    events_digest = serializers.CharField()


class ReviewExceptionOutput(serializers.Serializer):
    sequence = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    kind = serializers.CharField(help_text="lockout, reset, delegation, override, retention_change, ...")
    action = serializers.CharField()
    actor_username = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    payload = serializers.JSONField()


class ActionCountOutput(serializers.Serializer):
    action = serializers.CharField()
    count = serializers.IntegerField()


class AuditReviewDetailOutput(AuditReviewOutput):
    exceptions = ReviewExceptionOutput(many=True, help_text="The exceptions first (at most 500, oldest first).")
    period_exceptions_total = serializers.IntegerField()
    action_counts = ActionCountOutput(many=True)
    period_events_total = serializers.IntegerField()


class AuditReviewCompleteInput(serializers.Serializer):
    username = serializers.CharField(
        max_length=150,
        required=False,
        allow_blank=True,
        default="",
        help_text="Required for the first signature of a session (docs/part11.md).",
    )
    password = serializers.CharField(max_length=4096, trim_whitespace=False, allow_blank=True)
    meaning = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    comment = serializers.CharField(max_length=10_000, required=False, allow_blank=True, default="")
