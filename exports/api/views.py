"""Experiment console, notebook and evidence endpoints (docs/executions.md). Parse, call one service or selector,
serialize."""

from typing import Any, cast

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import SelectorListApi, validated
from config.errors import ValidationFailed
from config.parsers import JSONParser
from exports.api import serializers as s
from exports.choices import EvidenceKind
from exports.models import Evidence, Execution, ExecutionEvent
from exports.permissions import COACHING_ROLES, EXECUTION_WRITERS, OVERRIDE_ROLES, require_team_role
from exports.selectors.executions import (
    events_for_execution,
    evidence_for_user,
    execution_get_for_user,
    executions_for_user,
)
from exports.services.evidence import evidence_file_store, notebook_entry_create, structured_evidence_create
from exports.services.executions import (
    EventInput,
    coaching_note_record,
    events_append,
    execution_create,
    override_record,
)
from exports.uploads import StrictMultiPartParser
from governance.choices import Classification
from governance.selectors.teams import team_get_for_user


class ExecutionListCreateApi(SelectorListApi):
    serializer_class = s.ExecutionOutput
    schema_model = Execution

    def select(self):
        return executions_for_user(user=self.request.user, filters=self.request.query_params)

    @extend_schema(request=s.ExecutionInput, responses={201: s.ExecutionOutput})
    def post(self, request):
        data = validated(s.ExecutionInput, request.data)
        team = team_get_for_user(user=request.user, slug=data["team"])
        require_team_role(user=request.user, team_id=team.pk, roles=EXECUTION_WRITERS, action="start executions")
        execution = execution_create(
            team=team, title=data["title"], owner=request.user, protocol_template_key=data["protocol_template"]
        )
        return Response(s.ExecutionOutput(execution).data, status=status.HTTP_201_CREATED)


class ExecutionDetailApi(APIView):
    @extend_schema(responses=s.ExecutionOutput)
    def get(self, request, execution_id: int):
        return Response(s.ExecutionOutput(execution_get_for_user(user=request.user, execution_id=execution_id)).data)


class ExecutionEventsApi(SelectorListApi):
    serializer_class = s.EventOutput
    schema_model = ExecutionEvent
    accepts_one_or_many = settings.DOSSIER_MAX_EVENTS_PER_REQUEST

    def select(self):
        execution = execution_get_for_user(user=self.request.user, execution_id=self.kwargs["execution_id"])
        return events_for_execution(execution=execution, filters=self.request.query_params)

    @extend_schema(request=s.EventInput(many=True), responses={201: s.EventOutput(many=True)})
    def post(self, request, execution_id: int):
        execution = execution_get_for_user(user=request.user, execution_id=execution_id)
        require_team_role(user=request.user, team_id=execution.team_id, roles=EXECUTION_WRITERS, action="append events")
        items = request.data if isinstance(request.data, list) else [request.data]
        limit = settings.DOSSIER_MAX_EVENTS_PER_REQUEST
        if len(items) > limit:
            raise ValidationFailed(
                f"Send at most {limit} events per request.", details={"events": [f"Got {len(items)}."]}
            )
        if not all(isinstance(item, dict) for item in items):
            raise ValidationFailed("Each event must be a JSON object.", details={"events": ["Expected objects."]})
        data = cast("list[dict[str, Any]]", validated(s.EventInput, items, many=True))
        rows = events_append(execution=execution, actor=request.user, events=[EventInput(**item) for item in data])
        return Response(s.EventOutput(rows, many=True).data, status=status.HTTP_201_CREATED)


class ExecutionFileUploadApi(APIView):
    parser_classes = [StrictMultiPartParser]

    @extend_schema(request={"multipart/form-data": s.FileUploadInput}, responses={201: s.EvidenceOutput})
    def post(self, request, execution_id: int):
        execution = execution_get_for_user(user=request.user, execution_id=execution_id)
        require_team_role(user=request.user, team_id=execution.team_id, roles=EXECUTION_WRITERS, action="upload files")
        data = validated(s.FileUploadInput, request.data)
        upload = data["file"]
        evidence = evidence_file_store(
            execution=execution,
            actor=request.user,
            upload=upload,
            sha256=upload.sha256,
            title=data["title"],
            classification=data["classification"],
        )
        return Response(s.EvidenceOutput(evidence).data, status=status.HTTP_201_CREATED)


EXECUTION_PARAMETER = OpenApiParameter(
    "execution", int, required=True, description="The execution whose evidence to list (one you can see)."
)
CREATED_AFTER_PARAMETER = OpenApiParameter("created_after", OpenApiTypes.DATETIME, description="ISO 8601.")


class NotebookEntryCreateApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(request=s.NotebookEntryInput, responses={201: s.EvidenceOutput})
    def post(self, request):
        data = validated(s.NotebookEntryInput, request.data)
        execution = execution_get_for_user(user=request.user, execution_id=data.pop("execution"))
        require_team_role(
            user=request.user, team_id=execution.team_id, roles=EXECUTION_WRITERS, action="write notebook entries"
        )
        evidence = notebook_entry_create(execution=execution, actor=request.user, **data)
        return Response(s.EvidenceOutput(evidence).data, status=status.HTTP_201_CREATED)


class NotebookEvidenceListApi(SelectorListApi):
    serializer_class = s.EvidenceDescriptor
    schema_model = Evidence

    def select(self):
        filters = {**self.request.query_params.dict(), "kind": "notebook_entry"}
        return evidence_for_user(user=self.request.user, filters=filters)

    @extend_schema(parameters=[EXECUTION_PARAMETER, CREATED_AFTER_PARAMETER])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class EvidenceListCreateApi(SelectorListApi):
    serializer_class = s.EvidenceDescriptor
    schema_model = Evidence
    parser_classes = [JSONParser]

    def select(self):
        return evidence_for_user(user=self.request.user, filters=self.request.query_params.dict())

    @extend_schema(
        parameters=[
            EXECUTION_PARAMETER,
            OpenApiParameter("kind", str, enum=EvidenceKind.values),
            OpenApiParameter("classification", str, enum=Classification.values),
            CREATED_AFTER_PARAMETER,
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.StructuredEvidenceInput, responses={201: s.EvidenceOutput})
    def post(self, request):
        data = validated(s.StructuredEvidenceInput, request.data)
        execution = execution_get_for_user(user=request.user, execution_id=data.pop("execution"))
        require_team_role(user=request.user, team_id=execution.team_id, roles=EXECUTION_WRITERS, action="add evidence")
        evidence = structured_evidence_create(execution=execution, actor=request.user, **data)
        return Response(s.EvidenceOutput(evidence).data, status=status.HTTP_201_CREATED)


class ExecutionOverrideApi(APIView):
    @extend_schema(request=s.OverrideInput, responses={201: s.EventOutput})
    def post(self, request, execution_id: int):
        execution = execution_get_for_user(user=request.user, execution_id=execution_id)
        require_team_role(user=request.user, team_id=execution.team_id, roles=OVERRIDE_ROLES, action="override steps")
        data = validated(s.OverrideInput, request.data)
        event = override_record(execution=execution, actor=request.user, **data)
        return Response(s.EventOutput(event).data, status=status.HTTP_201_CREATED)


class ExecutionCoachingNoteApi(APIView):
    @extend_schema(request=s.CoachingNoteInput, responses={201: s.EventOutput})
    def post(self, request, execution_id: int):
        execution = execution_get_for_user(user=request.user, execution_id=execution_id)
        require_team_role(
            user=request.user, team_id=execution.team_id, roles=COACHING_ROLES, action="write coaching notes"
        )
        data = validated(s.CoachingNoteInput, request.data)
        event = coaching_note_record(execution=execution, actor=request.user, **data)
        return Response(s.EventOutput(event).data, status=status.HTTP_201_CREATED)
