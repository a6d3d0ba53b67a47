"""Approval endpoints (docs/approvals.md). Parse, call one service or selector, serialize."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals.api import serializers as s
from approvals.guardrails import dispatch_export_for_packaging
from approvals.models import AuditReview
from approvals.selectors import (
    HEAVY_EXPORT_FIELDS,
    export_get_for_user,
    governance_export_get_for_user,
    governance_exports_for_user,
    ladder_detail,
    ladder_history_rows,
    ladders_for_exports,
)
from approvals.services.audit_reviews import (
    audit_review_complete,
    audit_review_content,
    audit_review_get_for_user,
    audit_reviews_for_user,
    review_overdue,
)
from approvals.services.classification import evidence_relabel, export_relabel
from approvals.services.escalations import escalation_record
from approvals.services.ladders import stage_decide, stage_delegate, stage_reset
from approvals.services.preview import execution_preview_record_for_user
from approvals.services.signing_controls import (
    CURRENT_STATEMENT,
    signer_certification,
    signer_certify,
    signing_session_key,
)
from config.api import SelectorListApi, validated
from config.client_address import client_address
from config.errors import Conflict
from config.schema import ErrorOutput
from exports.models import NarrativeExport
from exports.permissions import require_team_role
from exports.selectors.executions import execution_get_for_user
from governance.choices import RoleKey

QUEUE_ROLES = frozenset({RoleKey.OPERATOR, RoleKey.ADMIN})
CONFLICT_DESCRIPTION = (
    "The ladder is not in a state that allows this: `stage_not_active` (another stage is in progress, see "
    "`expected_stage_id`), `ladder_closed`, and the like."
)
SIGNING_REFUSED_DESCRIPTION = (
    "`signature_invalid` (wrong password or username; `details.remaining_attempts`), `signer_locked_out` "
    "(`details.locked_until`), `signer_not_certified` (POST /api/auth/signature-certification first), "
    "`password_expired`, or a role the stage does not accept."
)
COMPONENTS_DESCRIPTION = (
    "`signature_components_required`: the first signature of a session needs `username` as well as `password`; "
    "or another invalid body."
)


def _ladder_response(export) -> dict:
    record = {"export": s.export_summary(export), "ladder": s.ladder_full(ladder_detail(export=export))}
    return s.ApprovalRecordOutput(record).data


class ExportApprovalsApi(APIView):
    """The full approval record of one export: stages, every signature (superseded too) and the history."""

    @extend_schema(responses=s.ApprovalRecordOutput)
    def get(self, request, execution_id: int, export_id: int):
        export = export_get_for_user(user=request.user, export_id=export_id, execution_id=execution_id)
        return Response(_ladder_response(export))


class ExportApproveApi(APIView):
    @extend_schema(
        request=s.DECISION_SCHEMA,
        responses={
            200: s.DecisionOutput,
            400: OpenApiResponse(ErrorOutput, description=COMPONENTS_DESCRIPTION),
            403: OpenApiResponse(ErrorOutput, description=SIGNING_REFUSED_DESCRIPTION),
            409: OpenApiResponse(ErrorOutput, description=CONFLICT_DESCRIPTION),
            503: OpenApiResponse(
                ErrorOutput,
                description="`busy`: every password-hash slot stayed taken, the password was not checked and nothing "
                "was recorded; retry after `Retry-After` seconds.",
            ),
        },
    )
    def post(self, request, execution_id: int, export_id: int):
        export = export_get_for_user(
            user=request.user,
            export_id=export_id,
            execution_id=execution_id,
            related=("execution",),  # signing reads its team
            defer=HEAVY_EXPORT_FIELDS,
        )
        data = validated(s.DecisionInput, request.data)
        outcome = stage_decide(
            export_id=export.pk,
            export=export,
            actor=request.user,
            signing_session=signing_session_key(request),
            **data,
        )
        ladder = s.ladder_full(
            outcome.ladder,
            stages=outcome.stages,
            signatures=[s.signature_representation(signature) for signature in outcome.signatures],
            history=ladder_history_rows(ladder_id=outcome.ladder.pk),
        )
        return Response(
            s.DecisionOutput(
                {
                    "export": s.export_summary(outcome.export),
                    "ladder": ladder,
                    "signature": s.signature_representation(outcome.signature),
                    "dispatched": outcome.dispatched,
                }
            ).data
        )


class StageDelegateApi(APIView):
    @extend_schema(
        request=s.DelegateInput,
        responses={200: s.ApprovalRecordOutput, 409: OpenApiResponse(ErrorOutput, description=CONFLICT_DESCRIPTION)},
    )
    def post(self, request, execution_id: int, export_id: int, stage_id: int):
        export = export_get_for_user(user=request.user, export_id=export_id, execution_id=execution_id)
        data = validated(s.DelegateInput, request.data)
        stage_delegate(export_id=export.pk, stage_id=stage_id, actor=request.user, **data)
        export.refresh_from_db()
        return Response(_ladder_response(export))


class StageResetApi(APIView):
    @extend_schema(
        request=s.ResetInput,
        responses={200: s.ApprovalRecordOutput, 409: OpenApiResponse(ErrorOutput, description=CONFLICT_DESCRIPTION)},
    )
    def post(self, request, execution_id: int, export_id: int, stage_id: int):
        export = export_get_for_user(user=request.user, export_id=export_id, execution_id=execution_id)
        data = validated(s.ResetInput, request.data)
        stage_reset(export_id=export.pk, stage_id=stage_id, actor=request.user, **data)
        export.refresh_from_db()
        return Response(_ladder_response(export))


class GovernanceExportListApi(generics.ListAPIView):
    """Operators' view of exports across their teams. Filters: q (search), status, team, template, overdue, guardrail,
    execution."""

    serializer_class = s.GovernanceExportOutput

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return NarrativeExport.objects.none()
        return governance_exports_for_user(user=self.request.user, filters=self.request.query_params)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "ladders": getattr(self, "_ladders", {})}

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        self._ladders = ladders_for_exports(export.pk for export in (page if page is not None else queryset))
        return page


class GovernanceExportDetailApi(APIView):
    @extend_schema(responses=s.GovernanceExportDetailOutput)
    def get(self, request, export_id: int):
        export = governance_export_get_for_user(user=request.user, export_id=export_id)
        approvals = s.ladder_full(ladder_detail(export=export))
        context = {"ladders": ladders_for_exports([export.pk]), "approvals": approvals}
        return Response(s.GovernanceExportDetailOutput(export, context=context).data)


class GovernanceExportQueueApi(APIView):
    @extend_schema(
        request=None,
        responses={
            202: s.DispatchOutput,
            409: OpenApiResponse(
                ErrorOutput, description="`packaging_blocked`: the approval guardrail holds it (`details.guardrail`)."
            ),
        },
    )
    def post(self, request, export_id: int):
        export = governance_export_get_for_user(user=request.user, export_id=export_id)
        require_team_role(
            user=request.user, team_id=export.execution.team_id, roles=QUEUE_ROLES, action="queue packaging"
        )
        outcome = dispatch_export_for_packaging(export, actor=request.user)
        guardrail = {
            **outcome.verdict.queue_state(attempts=outcome.export.packaging_attempts).as_json(),
            "reason": outcome.verdict.reason,
        }
        if not outcome.queued:
            raise Conflict(
                f"Packaging is blocked by the approval guardrail: {outcome.verdict.reason}",
                code="packaging_blocked",
                details={"guardrail": guardrail},
            )
        body = {"queued": True, "export": s.export_summary(outcome.export), "guardrail": guardrail}
        return Response(s.DispatchOutput(body).data, status=status.HTTP_202_ACCEPTED)


class ExecutionPreviewApi(APIView):
    """What a new export of this execution would get: the ladder projected from now, the narrative, warnings."""

    @extend_schema(
        parameters=[
            OpenApiParameter("evidence", str, description="kind:id pairs separated by commas; all evidence when absent")
        ],
        responses=s.PreviewOutput,
    )
    def get(self, request, execution_id: int):
        preview = execution_preview_record_for_user(
            user=request.user, execution_id=execution_id, evidence=request.query_params.get("evidence")
        )
        return Response(s.PreviewOutput(preview.as_dict()).data)


class GovernanceExportEscalationsApi(APIView):
    """Record the outcome of an escalation of one of the export's overdue stages (docs/escalations.md)."""

    @extend_schema(
        request=s.EscalationInput,
        responses={
            201: s.EscalationOutput,
            400: OpenApiResponse(
                ErrorOutput, description="`validation_error`: a bad field, or a next check not in the future."
            ),
            403: OpenApiResponse(ErrorOutput, description="`permission_denied`: needs operator, admin or compliance."),
            404: OpenApiResponse(
                ErrorOutput,
                description="`export_not_found`: no such export among your teams; `stage_not_found`: the stage is "
                "not one of this export's.",
            ),
            409: OpenApiResponse(
                ErrorOutput, description="`stage_not_open`: the stage is not waiting for a signature."
            ),
        },
    )
    def post(self, request, export_id: int):
        export = governance_export_get_for_user(user=request.user, export_id=export_id)
        data = validated(s.EscalationInput, request.data)
        escalation = escalation_record(export_id=export.pk, actor=request.user, **data)
        return Response(s.EscalationOutput(escalation).data, status=status.HTTP_201_CREATED)


class ExportClassificationApi(APIView):
    """Relabel an export (roles ``compliance``, ``admin``; docs/clearance.md): never below its evidence, only
    upwards once signed (409 ``relabel_downwards_after_signing``); recorded as ``narrative_export.relabelled``."""

    @extend_schema(
        request=s.ClassificationInput,
        responses={
            200: s.ClassificationOutput,
            409: OpenApiResponse(
                ErrorOutput,
                description="`relabel_downwards_after_signing`: a signed export's label only goes up; "
                "`below_evidence_classification`: never below its evidence's highest label.",
            ),
        },
    )
    def put(self, request, execution_id: int, export_id: int):
        export = export_get_for_user(
            user=request.user, export_id=export_id, execution_id=execution_id, related=(), defer=HEAVY_EXPORT_FIELDS
        )
        data = validated(s.ClassificationInput, request.data)
        export = export_relabel(export_id=export.pk, actor=request.user, classification=data["classification"])
        return Response(s.ClassificationOutput({"export_id": export.pk, "classification": export.classification}).data)


class EvidenceClassificationApi(APIView):
    """Relabel evidence (roles ``compliance``, ``admin``; docs/clearance.md): only upwards once a signed export
    cites it; raising it raises the exports citing it that are labelled lower. Recorded as
    ``execution.evidence_relabelled``."""

    @extend_schema(
        request=s.ClassificationInput,
        responses={
            200: s.EvidenceClassificationOutput,
            404: OpenApiResponse(ErrorOutput, description="`evidence_not_found`: no such evidence in this execution."),
            409: OpenApiResponse(
                ErrorOutput,
                description="`relabel_downwards_after_signing`: evidence cited by a signed export only goes up.",
            ),
        },
    )
    def put(self, request, execution_id: int, evidence_id: int):
        execution = execution_get_for_user(user=request.user, execution_id=execution_id)
        data = validated(s.ClassificationInput, request.data)
        evidence, raised = evidence_relabel(
            execution_id=execution.pk,
            evidence_id=evidence_id,
            actor=request.user,
            classification=data["classification"],
        )
        body = {"evidence_id": evidence.pk, "kind": evidence.kind, "classification": evidence.classification,
                "raised_exports": raised}  # fmt: skip
        return Response(s.EvidenceClassificationOutput(body).data)


def _certification_record(user) -> dict:
    certification = signer_certification(user=user)
    return s.CertificationOutput(
        {
            "certified": certification is not None,
            "statement_version": certification.statement_version if certification else None,
            "statement_digest": certification.statement_digest if certification else None,
            "certified_at": certification.certified_at if certification else None,
            "current_statement": {
                "version": CURRENT_STATEMENT.version,
                "text": CURRENT_STATEMENT.text,
                "digest": CURRENT_STATEMENT.digest,
            },
        }
    ).data


class SignatureCertificationApi(APIView):
    """The signer's certification (21 CFR 11.100(c), docs/part11.md): required before the first signature."""

    @extend_schema(responses=s.CertificationOutput)
    def get(self, request):
        return Response(_certification_record(request.user))

    @extend_schema(
        request=s.CertificationInput,
        responses={
            201: s.CertificationOutput,
            400: OpenApiResponse(ErrorOutput, description="An invalid body (a statement version not published)."),
            403: OpenApiResponse(
                ErrorOutput, description="`signature_invalid` (wrong password, counted) or `signer_locked_out`."
            ),
        },
    )
    def post(self, request):
        data = validated(s.CertificationInput, request.data)
        signer_certify(user=request.user, client_address=client_address(request), **data)
        return Response(_certification_record(request.user), status=status.HTTP_201_CREATED)


REVIEW_FIELDS = (
    "id", "team", "period_start", "period_end", "status", "reviewer", "opened_at", "due_at", "completed_by",
    "completed_at", "printed_name", "meaning", "comment", "events_total", "exceptions_total", "events_digest",
)  # fmt: skip


def _review_row(review) -> dict:
    return {**{name: getattr(review, name) for name in REVIEW_FIELDS}, "overdue": review_overdue(review)}


class AuditReviewListApi(SelectorListApi):
    """Audit-trail reviews of your teams (Annex 11 section 9, docs/part11.md), newest period first."""

    schema_model = AuditReview
    serializer_class = s.AuditReviewOutput
    filter_backends: list = []

    def select(self):
        filters = validated(s.AuditReviewQuery, self.request.query_params.dict(), query=True)
        return audit_reviews_for_user(user=self.request.user, filters=filters)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        rows = [_review_row(review) for review in page or []]
        return self.get_paginated_response(s.AuditReviewOutput(rows, many=True).data)

    @extend_schema(parameters=[s.AuditReviewQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


def _review_detail(review) -> dict:
    content = audit_review_content(review=review)
    row = {
        **_review_row(review),
        "exceptions": content.exceptions,
        "period_exceptions_total": content.exceptions_total,
        "action_counts": content.action_counts,
        "period_events_total": content.events_total,
    }
    return s.AuditReviewDetailOutput(row).data


class AuditReviewDetailApi(APIView):
    @extend_schema(responses=s.AuditReviewDetailOutput)
    def get(self, request, review_id: int):
        return Response(_review_detail(audit_review_get_for_user(user=request.user, review_id=review_id)))


class AuditReviewCompleteApi(APIView):
    @extend_schema(
        request=s.AuditReviewCompleteInput,
        responses={
            200: s.AuditReviewDetailOutput,
            400: OpenApiResponse(ErrorOutput, description=COMPONENTS_DESCRIPTION),
            403: OpenApiResponse(
                ErrorOutput,
                description="`reviewer_not_independent` (you acted in the period), `permission_denied` (not "
                "compliance/admin in the team), " + SIGNING_REFUSED_DESCRIPTION,
            ),
            409: OpenApiResponse(ErrorOutput, description="`audit_review_completed`: already signed."),
        },
    )
    def post(self, request, review_id: int):
        data = validated(s.AuditReviewCompleteInput, request.data)
        review = audit_review_complete(
            review_id=review_id, actor=request.user, signing_session=signing_session_key(request), **data
        )
        return Response(_review_detail(review))
