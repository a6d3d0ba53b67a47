"""Reads behind a team's data export and erasure (docs/team-data.md): every record of one team, kind by kind.

A *section* is one kind of record (executions, events, evidence, exports, ladders, signatures ...): a queryset of
the team's rows, written to the team bundle as one NDJSON file, one object per row with every stored column.
``exports`` declares its own sections here; higher apps add theirs through ``DOSSIER_TEAM_DATA_SECTIONS``
(exports/hooks.py) so that this app never imports them. Rows stream from server-side cursors
(``.iterator(chunk_size=…)``): memory does not grow with the team's size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import orjson
from django.db import connection
from django.db.models import F, Model, QuerySet

from exports.choices import EvidenceKind, ExportStatus
from exports.hooks import team_data_section_providers
from exports.models import (
    Evidence,
    Execution,
    ExecutionEvent,
    ExportArtifact,
    ExportAttachment,
    LegalHold,
    NarrativeExport,
    PackagingRun,
    RetentionTombstone,
    TeamDataExport,
)
from governance.models import (
    GovernanceBaseline,
    GovernanceBaselineEvent,
    Membership,
    Team,
    TrustedTimestamp,
    WorkflowTemplate,
    WorkflowTemplateAssignment,
)

CHUNK_SIZE = 2000
# Statuses whose bundle bytes are gone from storage (purged by retention, or erased with the team's content).
REMOVED_EXPORT_STATUSES = frozenset({ExportStatus.EXPIRED, ExportStatus.ERASED})


@dataclass(frozen=True)
class TeamDataSection:
    """One kind of the team's records. ``rows(team_id)`` is the team's queryset; ``retained`` marks records an
    erasure keeps because the law requires them (signatures, approval history, holds, the audit trail).
    ``fields`` names the columns (default: every concrete column, binary ones excepted); ``related`` adds columns
    of related rows under their own names (``{"username": "user__username"}``)."""

    kind: str
    rows: Callable[[int], QuerySet]
    retained: bool = False
    fields: tuple[str, ...] = ()
    related: Mapping[str, str] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return f"{self.kind}.ndjson"

    def columns(self, model: type[Model]) -> tuple[str, ...]:
        if self.fields:
            return self.fields
        return tuple(
            column.attname
            for column in model._meta.concrete_fields
            if column.get_internal_type() not in {"BinaryField"}
        )

    def _values(self, team_id: int) -> QuerySet:
        queryset = self.rows(team_id)
        related = {name: F(path) for name, path in self.related.items()}
        return queryset.order_by("pk").values(*self.columns(queryset.model), **related)

    def json_lines(self, team_id: int) -> Iterator[bytes]:
        """One JSON object per row, newline-terminated. On PostgreSQL the database writes the JSON itself
        (``row_to_json``) from a server-side cursor; elsewhere the rows are serialized here."""
        values = self._values(team_id)
        if connection.vendor != "postgresql":
            for row in values.iterator(chunk_size=CHUNK_SIZE):
                yield orjson.dumps(row, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC, default=str) + b"\n"
            return
        sql, params = values.query.sql_with_params()
        with connection.chunked_cursor() as cursor:
            cursor.execute(f"SELECT row_to_json(t)::text FROM ({sql}) t", params)  # noqa: S608 - Django's own SQL
            while rows := cursor.fetchmany(CHUNK_SIZE):
                yield b"".join(row[0].encode() + b"\n" for row in rows)

    def count(self, team_id: int) -> int:
        return self.rows(team_id).count()


def _members(team_id: int) -> QuerySet:
    return Membership.objects.filter(team_id=team_id)


EXPORTS_SECTIONS = (
    TeamDataSection(
        "team",
        lambda team_id: Team.objects.filter(pk=team_id),
        fields=("id", "slug", "name", "time_zone", "clearance_policy", "created_at"),
    ),
    TeamDataSection(
        "members",
        _members,
        fields=("id", "user_id"),
        related={
            "username": "user__username",
            "first_name": "user__first_name",
            "last_name": "user__last_name",
            "role_key": "role__key",
        },
    ),  # fmt: skip
    TeamDataSection("templates", lambda team_id: WorkflowTemplate.objects.filter(team_id=team_id)),
    TeamDataSection("template_assignments", lambda team_id: WorkflowTemplateAssignment.objects.filter(team_id=team_id)),
    TeamDataSection("baselines", lambda team_id: GovernanceBaseline.objects.filter(team_id=team_id)),
    TeamDataSection(
        "baseline_events", lambda team_id: GovernanceBaselineEvent.objects.filter(baseline__team_id=team_id)
    ),
    TeamDataSection("executions", lambda team_id: Execution.objects.filter(team_id=team_id)),
    TeamDataSection("events", lambda team_id: ExecutionEvent.objects.filter(execution__team_id=team_id)),
    TeamDataSection("evidence", lambda team_id: Evidence.objects.filter(execution__team_id=team_id)),
    TeamDataSection("exports", lambda team_id: NarrativeExport.objects.filter(execution__team_id=team_id)),
    TeamDataSection("attachments", lambda team_id: ExportAttachment.objects.filter(export__execution__team_id=team_id)),
    TeamDataSection("artifacts", lambda team_id: ExportArtifact.objects.filter(export__execution__team_id=team_id)),
    TeamDataSection("packaging_runs", lambda team_id: PackagingRun.objects.filter(export__execution__team_id=team_id)),
    TeamDataSection("holds", lambda team_id: LegalHold.objects.filter(team_id=team_id), retained=True),
    # RFC 3161 tokens over the team's signature records and bundles (docs/trusted-time.md): the covered bytes and
    # the TSA's reply as PostgreSQL bytea hex; tsa-certificates.pem beside them verifies them offline.
    TeamDataSection(
        "trusted_timestamps",
        lambda team_id: TrustedTimestamp.objects.filter(team_id=team_id),
        retained=True,
        fields=(
            "id",
            "subject_type",
            "subject_id",
            "subject_sha256",
            "status",
            "tsa_url",
            "gen_time",
            "serial_number",
            "created_at",
            "granted_at",
            "subject_bytes",
            "response",
        ),
    ),
    TeamDataSection(
        "retention_tombstones", lambda team_id: RetentionTombstone.objects.filter(team_id=team_id), retained=True
    ),
    TeamDataSection(
        "team_data_exports",
        lambda team_id: TeamDataExport.objects.filter(team_id=team_id),
        fields=(
            "id",
            "team_id",
            "requested_by_id",
            "status",
            "bag_name",
            "sha256",
            "size",
            "counts",
            "key_id",
            "error_code",
            "created_at",
            "finished_at",
        ),
    ),  # fmt: skip
)


def team_data_sections() -> tuple[TeamDataSection, ...]:
    """Every section in bundle order: this app's, then those the higher apps provide."""
    extra = tuple(section for provider in team_data_section_providers() for section in provider())
    return EXPORTS_SECTIONS + extra


# --- Stored files -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    """One stored object of the team: an uploaded evidence file or a packaged bundle, with its plaintext size and
    sha256 as recorded."""

    kind: str  # "evidence_files" or "bundles"
    record_id: int
    execution_id: int
    storage_path: str
    name: str
    size: int
    sha256: str


def evidence_files(team_id: int) -> Iterator[StoredFile]:
    rows = (
        Evidence.objects.filter(execution__team_id=team_id, kind=EvidenceKind.FILE, purged_at__isnull=True)
        .exclude(storage_path="")
        .order_by("pk")
        .values_list("pk", "execution_id", "storage_path", "original_filename", "size", "sha256")
    )
    for pk, execution_id, path, name, size, sha256 in rows.iterator(chunk_size=CHUNK_SIZE):
        yield StoredFile("evidence_files", pk, execution_id, path, name or "file", size, sha256)


def bundle_files(team_id: int) -> Iterator[StoredFile]:
    """Published bundles whose bytes are still kept (not erased, not purged by retention)."""
    rows = (
        ExportArtifact.objects.filter(export__execution__team_id=team_id, expired_at__isnull=True)
        .exclude(export__status__in=REMOVED_EXPORT_STATUSES)
        .exclude(storage_path="")
        .order_by("pk")
        .values_list("pk", "export__execution_id", "storage_path", "size", "sha256")
    )
    for pk, execution_id, path, size, sha256 in rows.iterator(chunk_size=CHUNK_SIZE):
        yield StoredFile("bundles", pk, execution_id, path, path.rsplit("/", 1)[-1], size, sha256)


def team_for_data(*, slug: str) -> Team | None:
    return Team.objects.filter(slug=slug).first()
