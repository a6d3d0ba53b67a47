"""The dashboard's Escalate action: a ``mailto:`` link that opens a ready-to-send escalation in the operator's
mail client (subject naming the export; body with the stage, role, detection time and guardrail forecast)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from django.conf import settings

from analytics.selectors import QueueRow
from textpolicy import inert_line
from textpolicy.utc import utc_minutes


def _utc(value: datetime | None) -> str:
    return utc_minutes(value, missing="none (ladder not clearing)")


def escalation_subject(row: QueueRow) -> str:
    export = row.export
    name = inert_line(row.stage.name)
    return f"Escalation: export {export.pk} v{export.version} — {name} overdue by {row.minutes_overdue} min"


def escalation_body(row: QueueRow, *, export_url: str) -> str:
    stage, export = row.stage, row.export
    # User-written names are shown inert, one line each (docs/text-policy.md).
    lines = [
        f"Export: {export.pk} (version {export.version}) — {inert_line(export.execution.title)}",
        f"Team: {inert_line(export.execution.team.slug)}",
        f"Stage: {stage.index + 1}. {inert_line(stage.name)}",
        f"Role: {inert_line(stage.required_role)}",
        f"Assignee: {inert_line(stage.assignee.username) if stage.assignee else 'unassigned'}",
        f"Due: {_utc(stage.due_at)}",
        f"Detected: {_utc(row.detected_at)}",
        f"Minutes overdue: {row.minutes_overdue}",
        f"Escalated by the SLA monitor: {_utc(stage.escalated_at) if stage.escalated_at else 'not yet'}",
        f"Guardrail forecast: {_utc(row.forecast)}",
        f"Export page: {export_url}",
    ]
    return "\r\n".join(lines) + "\r\n"


def escalation_mailto(row: QueueRow, *, export_url: str) -> str:
    address = settings.GOVERNANCE_ESCALATION_EMAIL
    subject = quote(escalation_subject(row), safe="")
    body = quote(escalation_body(row, export_url=export_url), safe="")
    return f"mailto:{quote(address, safe='@')}?subject={subject}&body={body}"
