"""``GET /api/governance/audit-events``: the audit trail for auditors, as a page of JSON or a streamed NDJSON/CSV
download (docs/audit-trail.md)."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from config.api import SelectorListApi, validated
from governance.models import AuditEvent
from governance.selectors.audit_trail import (
    AuditTrailFilters,
    audit_events_for_user,
    audit_rows,
    audit_segment,
    csv_chunks,
    ndjson_lines,
)
from governance.services.audit import _timestamp

FORMATS = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


class AuditTrailQuery(serializers.Serializer):
    team = serializers.SlugField(required=False, help_text="Team slug (one of your teams).")
    actor = serializers.CharField(required=False, max_length=150, help_text="Username of the actor.")
    action_prefix = serializers.CharField(required=False, max_length=120, help_text="Actions starting with this.")
    object_type = serializers.CharField(required=False, max_length=80)
    object_id = serializers.CharField(required=False, max_length=64)
    since = serializers.DateTimeField(required=False, help_text="ISO 8601; rows created at or after.")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601; rows created before.")
    after_sequence = serializers.IntegerField(required=False, min_value=0)
    format = serializers.ChoiceField(
        choices=["json", "ndjson", "csv"], required=False, default="json", help_text="ndjson/csv stream a file."
    )
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500)


class AuditEventOutput(serializers.ModelSerializer):
    created_at = serializers.SerializerMethodField()
    team: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "sequence", "created_at", "actor_id", "actor_username", "action", "object_type", "object_id", "team_id",
            "payload", "prev_hash", "hash", "team",
        ]  # fmt: skip

    def get_created_at(self, row: AuditEvent) -> str:
        return _timestamp(row.created_at)


class AuditEventsApi(SelectorListApi):
    schema_model = AuditEvent
    serializer_class = AuditEventOutput
    filter_backends: list = []

    def perform_content_negotiation(self, request, force=False):
        # ``format`` selects the download, not a DRF renderer; errors and pages are always JSON.
        return JSONRenderer(), JSONRenderer.media_type

    def _query(self) -> tuple[AuditTrailFilters, str]:
        data = dict(validated(AuditTrailQuery, self.request.query_params.dict(), query=True))
        kind = data.pop("format")
        data.pop("page", None), data.pop("page_size", None)
        return AuditTrailFilters(**data), kind

    def select(self):
        filters, _ = self._query()
        return audit_events_for_user(user=self.request.user, filters=filters).select_related("team")

    @extend_schema(
        parameters=[AuditTrailQuery],
        responses={
            (200, "application/json"): AuditEventOutput(many=True),
            (200, FORMATS["ndjson"].split(";")[0]): OpenApiTypes.STR,
            (200, FORMATS["csv"].split(";")[0]): OpenApiTypes.STR,
        },
    )
    def get(self, request, *args, **kwargs):
        filters, kind = self._query()
        if kind == "json":
            return super().get(request, *args, **kwargs)
        qs = audit_events_for_user(user=request.user, filters=filters)
        segment = audit_segment(qs)
        if kind == "ndjson":
            body = ndjson_lines(audit_rows(qs, until_sequence=segment.last_sequence))
        else:
            body = csv_chunks(qs, until_sequence=segment.last_sequence)
        response = StreamingHttpResponse(body, content_type=FORMATS[kind])
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="audit-trail-{stamp}.{kind}"'
        response["X-Dossier-Segment-Rows"] = str(segment.rows)
        if segment.rows:
            response["X-Dossier-Segment-First"] = f"{segment.first_sequence} {segment.first_hash}"
            response["X-Dossier-Segment-Last"] = f"{segment.last_sequence} {segment.last_hash}"
        response["Cache-Control"] = "no-store"
        return response
