"""Legal holds and retention dates (docs/records-lifecycle.md). Thin: parse, call, serialize."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import SelectorListApi, validated
from config.parsers import JSONParser
from config.schema import ErrorOutput
from exports.api import serializers as s
from exports.models import LegalHold
from exports.selectors.holds import legal_hold_get_for_user, legal_holds_for_user
from exports.services.holds import legal_hold_place, legal_hold_release
from exports.services.retention import export_retention_change
from governance.selectors.teams import team_get_for_user

HOLD_ERRORS = {
    403: OpenApiResponse(ErrorOutput, description="You hold neither compliance nor admin in the hold's team."),
    404: OpenApiResponse(ErrorOutput, description="No such hold, team or export among your teams."),
}


class LegalHoldListCreateApi(SelectorListApi):
    serializer_class = s.LegalHoldOutput
    schema_model = LegalHold
    parser_classes = [JSONParser]

    def select(self):
        return legal_holds_for_user(user=self.request.user, filters=self.request.query_params)

    @extend_schema(
        parameters=[
            OpenApiParameter("team", str, description="Team slug."),
            OpenApiParameter("scope", str, enum=["team", "export"]),
            OpenApiParameter("export", int),
            OpenApiParameter("active", bool, description="true: active holds only; false: released ones only."),
        ],
        responses={200: s.LegalHoldOutput(many=True), 403: HOLD_ERRORS[403]},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.LEGAL_HOLD_SCHEMA, responses={201: s.LegalHoldOutput, **HOLD_ERRORS})
    def post(self, request):
        data = validated(s.legal_hold_input_for(request.data), request.data)
        team = team_get_for_user(user=request.user, slug=data["team"])
        hold = legal_hold_place(
            actor=request.user, team=team, scope=data["scope"], export_id=data.get("export_id"), reason=data["reason"]
        )
        hold = legal_hold_get_for_user(user=request.user, hold_id=hold.pk)
        return Response(s.LegalHoldOutput(hold).data, status=status.HTTP_201_CREATED)


class LegalHoldDetailApi(APIView):
    @extend_schema(responses={200: s.LegalHoldOutput, **HOLD_ERRORS})
    def get(self, request, hold_id: int):
        return Response(s.LegalHoldOutput(legal_hold_get_for_user(user=request.user, hold_id=hold_id)).data)


class LegalHoldReleaseApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=s.LegalHoldReleaseInput,
        responses={
            200: s.LegalHoldOutput,
            **HOLD_ERRORS,
            409: OpenApiResponse(ErrorOutput, description="`legal_hold_released`: the hold was already released."),
        },
    )
    def post(self, request, hold_id: int):
        legal_hold_get_for_user(user=request.user, hold_id=hold_id)
        data = validated(s.LegalHoldReleaseInput, request.data)
        legal_hold_release(actor=request.user, hold_id=hold_id, reason=data["reason"])
        return Response(s.LegalHoldOutput(legal_hold_get_for_user(user=request.user, hold_id=hold_id)).data)


class ExportRetentionApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=s.RetentionInput,
        responses={
            200: s.RetentionOutput,
            403: OpenApiResponse(ErrorOutput, description="You hold neither compliance nor admin in the team."),
            404: OpenApiResponse(ErrorOutput, description="No such export among your teams."),
            409: OpenApiResponse(
                ErrorOutput,
                description="`retention_locked`: compliance mode, the date can only be extended; `retention_ended`: "
                "the export's records were already purged or erased.",
            ),
        },
    )
    def post(self, request, export_id: int):
        data = validated(s.RetentionInput, request.data)
        export = export_retention_change(
            actor=request.user, export_id=export_id, retain_until=data["retain_until"], reason=data["reason"]
        )
        return Response(s.RetentionOutput(export).data)
