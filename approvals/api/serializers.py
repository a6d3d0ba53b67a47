from typing import Any

from rest_framework import serializers

from approvals.choices import Decision
from approvals.models import ApprovalHistory, ApprovalSignature
from approvals.selectors import HISTORY_COLUMNS, SIGNATURE_COLUMNS, represent, stage_representation
from governance.choices import Classification


class DecisionInput(serializers.Serializer):
    decision = serializers.ChoiceField(Decision.choices)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, allow_blank=True)
    meaning = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    comment = serializers.CharField(max_length=10_000, required=False, allow_blank=True, default="")
    expected_stage_id = serializers.IntegerField(min_value=1)


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
    queued_at = serializers.DateTimeField()
    packaged_at = serializers.DateTimeField()

    def get_template(self, export) -> dict | None:
        snapshot = export.template_snapshot
        if snapshot is None:
            return None
        return {"snapshot_id": snapshot.pk, "template_key": snapshot.template_key, "version": snapshot.version}

    def get_ladder(self, export) -> dict | None:
        return self.context["ladders"].get(export.pk)


class DispatchOutput(serializers.Serializer):
    queued = serializers.BooleanField()
    export = serializers.JSONField()
    guardrail = serializers.JSONField()


class ClassificationInput(serializers.Serializer):
    classification = serializers.ChoiceField(choices=Classification.choices)


class ClassificationOutput(serializers.Serializer):
    export_id = serializers.IntegerField()
    classification = serializers.ChoiceField(choices=Classification.choices)
