"""Approval expiry (docs/records-lifecycle.md): a ladder open past its template's limit is closed by the periodic
task, the export becomes ``approval_expired``, the author is told, and a new version starts a new ladder."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from approvals.models import ApprovalHistory, ApprovalLadder
from approvals.tasks import expire_open_ladders
from exports.models import ExecutionEvent, NarrativeExport
from governance.models import AuditEvent, WorkflowTemplate
from governance.services.templates import template_publish
from tests.approvals.factories import STAGES, export_with_ladder

pytestmark = pytest.mark.django_db


def snapshot_expiring_after(hours):
    template = WorkflowTemplate.objects.create(
        template_key="expiring",
        version=1,
        name="Expiring ladder",
        stage_blueprints=STAGES,
        permitted_roles=["reviewer", "qa_approver", "compliance"],
        sla_defaults={"sla_hours": 48, "escalate_after_hours": 24},
        ladder_expires_after_hours=hours,
    )
    return template_publish(template=template)


def opened_hours_ago(export, hours):
    ApprovalLadder.objects.filter(export=export).update(created_at=timezone.now() - timedelta(hours=hours))


def test_an_open_ladder_past_its_limit_expires_once_and_the_author_is_told(
    ladder_execution, crew, django_capture_on_commit_callbacks
):
    crew.author.email = "author@example.org"
    crew.author.save()
    snapshot = snapshot_expiring_after(4)
    export = export_with_ladder(execution=ladder_execution, author=crew.author, snapshot=snapshot)
    fresh = export_with_ladder(execution=ladder_execution, author=crew.author, snapshot=snapshot)
    opened_hours_ago(export, 5)
    opened_hours_ago(fresh, 3)

    with django_capture_on_commit_callbacks(execute=True):
        result = expire_open_ladders.delay().get()

    assert result["expired"] == [export.ladder.pk]
    assert NarrativeExport.objects.get(pk=export.pk).status == "approval_expired"
    assert NarrativeExport.objects.get(pk=fresh.pk).status == "awaiting_approval"
    assert ApprovalLadder.objects.get(export=export).status == "expired"
    assert ApprovalHistory.objects.filter(ladder__export=export, action="expired").count() == 1
    event = ExecutionEvent.objects.get(event_type="narrative_export.approval.expired")
    assert event.payload["export_id"] == export.pk and event.payload["ladder_id"] == export.ladder.pk
    assert AuditEvent.objects.filter(action="narrative_export.approval.expired").count() == 1
    assert [m.to for m in mail.outbox] == [["author@example.org"]]
    assert f"export {export.pk} v1" in mail.outbox[0].subject

    with django_capture_on_commit_callbacks(execute=True):
        assert expire_open_ladders.delay().get()["expired"] == [], "an expired ladder is not open"
    assert len(mail.outbox) == 1

    renewed = export_with_ladder(execution=ladder_execution, author=crew.author, snapshot=snapshot)
    assert renewed.status == "awaiting_approval" and ApprovalLadder.objects.get(export=renewed).status == "in_progress"


def test_without_a_limit_nothing_expires(export):
    opened_hours_ago(export, 24 * 365)
    assert expire_open_ladders.delay().get() == {"checked": 1, "expired": []}
    assert NarrativeExport.objects.get(pk=export.pk).status == "awaiting_approval"


def test_the_export_page_shows_retention_holds_and_offers_a_new_version_after_expiry(
    ladder_execution, crew, team, client
):
    from exports.services.holds import legal_hold_place

    snapshot = snapshot_expiring_after(1)
    export = export_with_ladder(execution=ladder_execution, author=crew.author, snapshot=snapshot)
    NarrativeExport.objects.filter(pk=export.pk).update(
        retain_until=timezone.now() + timedelta(days=30), retention_mode="compliance"
    )
    hold = legal_hold_place(actor=crew.compliance, team=team, scope="export", export_id=export.pk, reason="Audit")
    client.force_login(crew.author)
    html = client.get(f"/exports/{export.pk}/").content.decode()
    assert "(compliance mode)" in html and f"hold #{hold.pk}" in html
    assert 'data-testid="new-version"' not in html
    opened_hours_ago(export, 2)
    expire_open_ladders.delay().get()
    html = client.get(f"/exports/{export.pk}/").content.decode()
    assert "Approval expired" in html and 'data-testid="new-version"' in html
