"""Narrative export, artifact, packaging telemetry and signing key endpoints (docs/exports.md). Thin: parse, call,
serialize."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from django.http import FileResponse, HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import SelectorListApi, validated
from config.parsers import JSONParser
from config.schema import ErrorOutput
from exports.api import serializers as s
from exports.models import NarrativeExport
from exports.permissions import EXECUTION_WRITERS, require_team_role
from exports.selectors.executions import execution_get_for_user
from exports.selectors.narrative_exports import (
    export_get_for_user,
    export_representations,
    exports_for_execution,
    packaging_jobs_summary,
    signing_keys_list,
)
from exports.services.clearance import export_reader_views
from exports.services.downloads import (
    RenditionDownload,
    VerifiedDownload,
    artifact_download_open,
    artifact_link_issue,
    artifact_link_resolve,
    artifact_rendition_open,
)
from exports.services.narrative_exports import EvidenceRef, export_create
from exports.services.timestamps import artifact_timestamp_reply
from exports.storage import BUNDLE_CONTENT_TYPES, BUNDLE_SUFFIXES
from governance.services.timestamps import tsa_certificates_pem

DOWNLOAD_CHUNK = 1 << 20
TIMESTAMP_REPLY_TYPE = "application/timestamp-reply"
PEM_CHAIN_TYPE = "application/pem-certificate-chain"
ARTIFACT_RESPONSES: dict[int | tuple[int, str], Any] = {
    **{(200, content_type): OpenApiTypes.BINARY for content_type in BUNDLE_CONTENT_TYPES.values()},
    404: OpenApiResponse(ErrorOutput, description="No artifact (yet), or the link is unknown or expired."),
    409: OpenApiResponse(ErrorOutput, description="`artifact_integrity_failed`: the stored bytes fail their sha256."),
    410: OpenApiResponse(ErrorOutput, description="The artifact is past its retention window and was purged."),
}
RENDITION_RESPONSES: dict[int | tuple[int, str], Any] = {
    (200, "application/pdf"): OpenApiTypes.BINARY,
    404: OpenApiResponse(
        ErrorOutput, description="No artifact (yet), or `rendition_not_found`: a bundle format without the PDF."
    ),
    409: OpenApiResponse(ErrorOutput, description="`artifact_integrity_failed`: the stored bytes fail their sha256."),
    410: OpenApiResponse(ErrorOutput, description="The artifact is past its retention window and was purged."),
}


def _export_output(export: NarrativeExport, serializer=s.ExportOutput, *, readers: dict | None = None) -> dict:
    context = {"extras": export_representations([export]), "readers": readers or {}}
    return serializer(export, context=context).data


class ExportListCreateApi(SelectorListApi):
    serializer_class = s.ExportOutput
    schema_model = NarrativeExport
    parser_classes = [JSONParser]

    def select(self):
        execution = execution_get_for_user(user=self.request.user, execution_id=self.kwargs["execution_id"])
        return exports_for_execution(execution=execution)

    def get_serializer(self, *args, **kwargs):
        if args and isinstance(args[0], list):
            context = kwargs.setdefault("context", {})
            context["extras"] = export_representations(args[0])
            context["readers"] = export_reader_views(exports=args[0], user=self.request.user, action="list")
        return super().get_serializer(*args, **kwargs)

    @extend_schema(
        request=s.ExportCreateInput,
        responses={
            201: s.ExportOutput,
            409: OpenApiResponse(
                ErrorOutput,
                description="`template_not_published` / `no_published_template`: no published ladder applies; "
                "`template_snapshot_drift`: the snapshot that applies no longer matches its hash.",
            ),
        },
    )
    def post(self, request, execution_id: int):
        execution = execution_get_for_user(user=request.user, execution_id=execution_id)
        require_team_role(
            user=request.user, team_id=execution.team_id, roles=EXECUTION_WRITERS, action="create exports"
        )
        data = validated(s.ExportCreateInput, request.data)
        export = export_create(
            execution=execution,
            actor=request.user,
            evidence=[EvidenceRef(kind=item["kind"], id=item["id"]) for item in data["evidence"]],
            template_key=data["template_key"],
            notes=data["notes"],
            classification=data["classification"],
        )
        export = export_get_for_user(user=request.user, execution_id=execution_id, export_id=export.pk)
        # The author sees what they may read of it, as on every read (docs/clearance.md).
        readers = export_reader_views(exports=[export], user=request.user, action="create")
        return Response(_export_output(export, readers=readers), status=status.HTTP_201_CREATED)


class ExportDetailApi(APIView):
    """One export; above the reader's clearance, metadata only (``withheld``; docs/clearance.md)."""

    @extend_schema(responses=s.ExportDetailOutput)
    def get(self, request, execution_id: int, export_id: int):
        export = export_get_for_user(user=request.user, execution_id=execution_id, export_id=export_id)
        readers = export_reader_views(exports=[export], user=request.user, action="detail")
        return Response(_export_output(export, s.ExportDetailOutput, readers=readers))


def _artifact_response(download: VerifiedDownload) -> FileResponse:
    artifact = download.artifact
    response = FileResponse(
        download.handle,
        as_attachment=True,
        filename=f"{artifact.bag_name}{BUNDLE_SUFFIXES[artifact.compression]}",
        content_type=BUNDLE_CONTENT_TYPES[artifact.compression],
    )
    response.block_size = DOWNLOAD_CHUNK
    response["Content-Length"] = str(artifact.size)  # the verified plaintext's size (the stored object is larger)
    digest = base64.b64encode(bytes.fromhex(artifact.sha256)).decode()
    response["ETag"] = f'"{artifact.sha256}"'
    response["Digest"] = f"sha-256={digest}"
    response["Repr-Digest"] = f"sha-256=:{digest}:"
    response["Cache-Control"] = "private, no-store"
    return response


class ExportArtifactApi(APIView):
    @extend_schema(responses=ARTIFACT_RESPONSES)
    def get(self, request, execution_id: int, export_id: int):
        export = export_get_for_user(user=request.user, execution_id=execution_id, export_id=export_id)
        return _artifact_response(artifact_download_open(export=export, actor=request.user))


def _rendition_response(download: RenditionDownload) -> HttpResponse:
    response = HttpResponse(download.content, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{download.filename}"'
    digest = hashlib.sha256(download.content).digest()
    response["ETag"] = f'"{digest.hex()}"'
    response["Repr-Digest"] = f"sha-256=:{base64.b64encode(digest).decode()}:"
    response["Cache-Control"] = "private, no-store"
    return response


class ExportRenditionApi(APIView):
    """``data/dossier.pdf`` of the packaged artifact, alone (docs/exports.md, "The rendition")."""

    @extend_schema(responses=RENDITION_RESPONSES)
    def get(self, request, execution_id: int, export_id: int):
        export = export_get_for_user(user=request.user, execution_id=execution_id, export_id=export_id)
        return _rendition_response(artifact_rendition_open(export=export, actor=request.user))


class ExportArtifactLinkApi(APIView):
    @extend_schema(responses=s.ArtifactLinkOutput)
    def get(self, request, execution_id: int, export_id: int):
        export = export_get_for_user(user=request.user, execution_id=execution_id, export_id=export_id)
        _, link = artifact_link_issue(export=export, actor=request.user)
        url = request.build_absolute_uri(reverse("artifact-signed-download", kwargs={"token": link.token}))
        return Response(s.ArtifactLinkOutput({"url": url, "expires_at": link.expires_at}).data)


class ArtifactSignedDownloadApi(APIView):
    """The target of ``.../artifact/link``: the signed token is the credential, so no session is needed."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses=ARTIFACT_RESPONSES)
    def get(self, request, token: str):
        export, user = artifact_link_resolve(token=token)
        return _artifact_response(artifact_download_open(export=export, actor=user, via="signed_link"))


class _BinaryNegotiation(DefaultContentNegotiation):
    """Binary answers (a timestamp reply, a certificate chain) ignore ``Accept``; their errors stay JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ExportArtifactTimestampApi(APIView):
    """The RFC 3161 reply over the bundle's tag manifest, for ``openssl ts -verify`` (docs/trusted-time.md)."""

    content_negotiation_class = _BinaryNegotiation

    @extend_schema(
        responses={
            (200, TIMESTAMP_REPLY_TYPE): OpenApiTypes.BINARY,
            404: OpenApiResponse(
                ErrorOutput,
                description="`artifact_not_found`, `timestamp_not_found` (trusted time was off) or "
                "`timestamp_pending` (the TSA has not answered yet).",
            ),
        }
    )
    def get(self, request, execution_id: int, export_id: int):
        export = export_get_for_user(user=request.user, execution_id=execution_id, export_id=export_id)
        artifact, reply = artifact_timestamp_reply(export=export)
        response = HttpResponse(reply, content_type=TIMESTAMP_REPLY_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{artifact.bag_name}.tagmanifest.tsr"'
        return response


class TsaCertificatesApi(APIView):
    """The certificates that TSA tokens chain to, as one PEM file for ``openssl ts -verify -CAfile``."""

    permission_classes = [AllowAny]
    content_negotiation_class = _BinaryNegotiation

    @extend_schema(responses={(200, PEM_CHAIN_TYPE): OpenApiTypes.STR})
    def get(self, request):
        response = HttpResponse(tsa_certificates_pem(), content_type=PEM_CHAIN_TYPE)
        response["Content-Disposition"] = 'inline; filename="tsa-certificates.pem"'
        return response


class PackagingJobsApi(APIView):
    @extend_schema(responses=s.PackagingJobsOutput)
    def get(self, request):
        return Response(s.PackagingJobsOutput(packaging_jobs_summary(user=request.user)).data)


class SigningKeysApi(APIView):
    """Public keys of every bundle signing key, past ones included, so any bundle can be verified."""

    permission_classes = [AllowAny]

    @extend_schema(responses=OpenApiResponse(s.SigningKeysOutput))
    def get(self, request):
        return Response(s.SigningKeysOutput({"keys": signing_keys_list()}).data)
