"""Team data export and erasure endpoints (docs/team-data.md). Thin: parse, call, serialize.

- ``POST /api/governance/teams/{slug}/data-export`` → 202 with the request's status document (roles
  ``compliance``, ``admin``, ``auditor``); a worker builds the bundle.
- ``GET …/data-export/{id}`` → the status document; ``GET …/data-export/{id}/download`` → the bundle once done.
- ``POST /api/governance/teams/{slug}/erasure`` ``{"reason", "dry_run"}`` → 200 with the report (role ``admin``).
"""

from __future__ import annotations

import base64
from typing import Any

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import validated
from config.parsers import JSONParser
from config.schema import ErrorOutput
from exports.models import TeamDataExport
from exports.services.team_data_exports import (
    team_data_export_download_open,
    team_data_export_get_for_user,
    team_data_export_request,
)
from exports.services.team_erasure import ErasureReport, team_erase
from exports.storage import BUNDLE_CONTENT_TYPES, BUNDLE_SUFFIXES
from governance.selectors.teams import team_get_for_user

DOWNLOAD_CHUNK = 1 << 20


class TeamDataExportOutput(serializers.ModelSerializer):
    team: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    requested_by: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="username", read_only=True)
    counts = serializers.DictField(child=serializers.IntegerField())
    status_url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = TeamDataExport
        fields = [
            "id", "team", "status", "requested_by", "created_at", "started_at", "finished_at", "bag_name",
            "compression", "sha256", "size", "key_id", "counts", "error_code", "status_url", "download_url",
        ]  # fmt: skip

    def get_status_url(self, obj: TeamDataExport) -> str:
        return reverse("team-data-export-detail", kwargs={"slug": obj.team.slug, "request_id": obj.pk})

    def get_download_url(self, obj: TeamDataExport) -> str | None:
        if obj.status != "done":
            return None
        return reverse("team-data-export-download", kwargs={"slug": obj.team.slug, "request_id": obj.pk})


class ErasureInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)
    dry_run = serializers.BooleanField(default=True)


class ErasureOutput(serializers.Serializer):
    team = serializers.CharField()
    dry_run = serializers.BooleanField()
    erased = serializers.BooleanField(help_text="Whether this call removed anything (false for a dry run or a repeat).")
    removed = serializers.DictField(child=serializers.IntegerField(), help_text="Per kind: removed, or would be.")
    retained = serializers.DictField(
        child=serializers.IntegerField(), help_text="Per kind: records kept under legal obligation."
    )


def _erasure_body(report: ErasureReport) -> dict[str, Any]:
    return {
        "team": report.team.slug,
        "dry_run": report.dry_run,
        "erased": not report.dry_run and not report.nothing_to_remove,
        "removed": report.removed,
        "retained": report.retained,
    }


class TeamDataExportRequestApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=None,
        responses={
            202: TeamDataExportOutput,
            403: OpenApiResponse(ErrorOutput, description="Not compliance, admin or auditor in the team."),
            404: OpenApiResponse(ErrorOutput, description="Not one of your teams."),
        },
    )
    def post(self, request, slug: str):
        created = team_data_export_request(user=request.user, slug=slug)
        return Response(TeamDataExportOutput(created).data, status=status.HTTP_202_ACCEPTED)


class TeamDataExportDetailApi(APIView):
    @extend_schema(responses={200: TeamDataExportOutput, 404: ErrorOutput})
    def get(self, request, slug: str, request_id: int):
        found = team_data_export_get_for_user(user=request.user, slug=slug, request_id=request_id)
        return Response(TeamDataExportOutput(found).data)


class TeamDataExportDownloadApi(APIView):
    @extend_schema(
        responses={
            **{(200, content_type): OpenApiTypes.BINARY for content_type in BUNDLE_CONTENT_TYPES.values()},
            404: ErrorOutput,
            409: OpenApiResponse(ErrorOutput, description="Still being built, failed, or fails its sha256."),
            410: OpenApiResponse(ErrorOutput, description="Erased with the team's content."),
        }
    )
    def get(self, request, slug: str, request_id: int):
        found = team_data_export_get_for_user(user=request.user, slug=slug, request_id=request_id)
        download = team_data_export_download_open(request=found, user=request.user)
        done = download.request
        response = FileResponse(
            download.handle,
            as_attachment=True,
            filename=f"{done.bag_name}{BUNDLE_SUFFIXES[done.compression]}",
            content_type=BUNDLE_CONTENT_TYPES[done.compression],
        )
        response.block_size = DOWNLOAD_CHUNK
        response["Content-Length"] = str(done.size)
        digest = base64.b64encode(bytes.fromhex(done.sha256)).decode()
        response["ETag"] = f'"{done.sha256}"'
        response["Digest"] = f"sha-256={digest}"
        response["Cache-Control"] = "private, no-store"
        return response


class TeamErasureApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=ErasureInput,
        responses={
            200: ErasureOutput,
            403: OpenApiResponse(ErrorOutput, description="Not an admin of the team."),
            404: OpenApiResponse(ErrorOutput, description="Not one of your teams."),
            409: OpenApiResponse(
                ErrorOutput,
                description="`legal_hold_active`, `retention_locked` (compliance-mode retention not ended) or "
                "`packaging_in_progress`.",
            ),
        },
    )
    def post(self, request, slug: str):
        data = validated(ErasureInput, request.data)
        team = team_get_for_user(user=request.user, slug=slug)
        report = team_erase(slug=team.slug, actor=request.user, reason=data["reason"], dry_run=data["dry_run"])
        return Response(ErasureOutput(_erasure_body(report)).data)
