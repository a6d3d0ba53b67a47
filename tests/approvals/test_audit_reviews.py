"""Periodic audit-trail review (docs/part11.md, "Audit-trail review"): opened per team and month for an
independent reviewer, exceptions first, completed with an electronic signature and audited."""

import hashlib
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from approvals.choices import AuditReviewStatus
from approvals.models import ApprovalStage, AuditReview
from approvals.services.audit_reviews import audit_reviews_schedule, month_period
from approvals.services.ladders import stage_delegate
from config.errors import ValidationFailed
from exports.events import EventType
from governance.models import AuditEvent, Team
from governance.services.clearance import clearance_set
from tests.approvals.factories import PASSWORD
from tests.factories import TeamFactory, member_of

URL = "/api/governance/audit-reviews"


def schedule_this_month():
    """Open the reviews of the current month, as the run after it ends does."""
    start, end = month_period(timezone.now())
    return audit_reviews_schedule(now=end + timedelta(minutes=1), period_start=start)


@pytest.fixture
def acted(team, crew, export):
    """In this month: the compliance member delegated a stage (an exception) and changed a clearance."""
    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    stage_delegate(export_id=export.pk, stage_id=stage.pk, actor=crew.compliance, assignee="rev2", reason="Leave")
    clearance_set(team=team, username="rev", level="Confidential", actor=crew.compliance)
    return crew


@pytest.mark.django_db
def test_a_review_is_opened_per_team_for_an_independent_reviewer_and_only_once(team, acted):
    other = TeamFactory(slug="beta")
    member_of(other, "compliance", username="beta-comp")
    result = schedule_this_month()
    reviews = {review.team_id: review for review in result.opened}
    assert set(reviews) == {team.pk, other.pk}
    assert reviews[team.pk].reviewer.username == "adm"  # comp acted in the period; adm did not
    assert reviews[other.pk].reviewer.username == "beta-comp"
    assert reviews[team.pk].due_at == result.period_end + timedelta(days=14)
    assert AuditEvent.objects.filter(action=EventType.AUDIT_REVIEW_OPENED).count() == 2
    assert schedule_this_month().opened == []  # idempotent
    assert AuditReview.objects.count() == 2
    with pytest.raises(ValidationFailed) as early:
        audit_reviews_schedule(period_start=timezone.now())
    assert early.value.code == "period_not_ended"


@pytest.mark.django_db
def test_the_command_opens_a_past_month_once_and_exits_3_when_nobody_independent_can_take_one(team, crew, capsys):
    lonely = TeamFactory(slug="lonely")
    member_of(lonely, "scientist", username="lonely-sci")
    Team.objects.update(created_at=timezone.now() - timedelta(days=70))
    start, _ = month_period(timezone.now() - timedelta(days=40))
    with pytest.raises(SystemExit) as exited:
        call_command("schedule_audit_reviews", "--period", f"{start:%Y-%m}")
    assert exited.value.code == 3
    out, err = capsys.readouterr()
    assert "opened: 2" in out and "team lonely, assigned to nobody independent" in out
    assert "1 review(s) have no independent reviewer" in err
    assert AuditReview.objects.get(team=team).reviewer.username == "adm"  # least loaded, then by name
    assert AuditReview.objects.get(team=lonely).reviewer is None
    call_command("schedule_audit_reviews", "--period", f"{start:%Y-%m}")  # nothing more to open: exit 0
    assert AuditReview.objects.count() == 2


@pytest.mark.django_db
def test_the_review_lists_exceptions_first_and_other_teams_get_404(client_for, team, acted):
    schedule_this_month()
    review = AuditReview.objects.get(team=team)
    listed = client_for(acted.auditor).get(URL).json()
    assert [row["id"] for row in listed["results"]] == [review.pk]
    assert listed["results"][0]["reviewer"] == "adm" and listed["results"][0]["overdue"] is False
    detail = client_for(acted.auditor).get(f"{URL}/{review.pk}").json()
    assert [row["kind"] for row in detail["exceptions"]] == ["delegation"]
    assert detail["exceptions"][0]["action"] == EventType.STAGE_DELEGATED
    counts = {row["action"]: row["count"] for row in detail["action_counts"]}
    assert counts["governance.clearance_changed"] == 1 and detail["period_exceptions_total"] == 1

    outsider = member_of(TeamFactory(slug="gamma"), "compliance", username="outsider")
    assert client_for(outsider).get(f"{URL}/{review.pk}").status_code == 404
    body = {"password": PASSWORD, "meaning": "Reviewed", "comment": ""}
    assert client_for(outsider).post(f"{URL}/{review.pk}/complete", body, format="json").status_code == 404
    assert client_for(acted.auditor).get(URL, {"status": "bogus"}).status_code == 400


@pytest.mark.django_db
def test_someone_who_acted_in_the_period_cannot_complete_the_review(client_for, team, acted):
    schedule_this_month()
    review = AuditReview.objects.get(team=team)
    body = {"password": PASSWORD, "meaning": "Reviewed", "comment": "All explained."}
    refused = client_for(acted.compliance).post(f"{URL}/{review.pk}/complete", body, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "reviewer_not_independent"
    not_a_reviewer = client_for(acted.auditor).post(f"{URL}/{review.pk}/complete", body, format="json")
    assert not_a_reviewer.status_code == 403 and not_a_reviewer.json()["error"]["code"] == "permission_denied"
    review.refresh_from_db()
    assert review.status == AuditReviewStatus.OPEN


@pytest.mark.django_db
def test_a_completed_review_is_signed_and_audited(client_for, team, acted):
    schedule_this_month()
    review = AuditReview.objects.get(team=team)
    url = f"{URL}/{review.pk}/complete"
    body = {"password": PASSWORD, "meaning": "Audit trail reviewed", "comment": "Delegation explained by leave."}
    components = client_for(acted.admin).post(url, {**body, "username": ""}, format="json")
    assert components.status_code == 400 and components.json()["error"]["code"] == "signature_components_required"
    wrong = client_for(acted.admin).post(url, {**body, "password": "nope"}, format="json")
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "signature_invalid"
    signed = client_for(acted.admin).post(url, body, format="json")
    assert signed.status_code == 200, signed.json()
    data = signed.json()
    assert data["status"] == "completed" and data["completed_by"] == "adm"
    assert data["printed_name"] == acted.admin.get_full_name() and data["meaning"] == "Audit trail reviewed"
    hashes = AuditEvent.objects.filter(
        team=team, created_at__gte=review.period_start, created_at__lt=review.period_end, sequence__lt=_completed_seq()
    ).order_by("sequence")
    expected = hashlib.sha256("".join(hashes.values_list("hash", flat=True)).encode()).hexdigest()
    assert data["events_digest"] == expected and data["exceptions_total"] == 1
    event = AuditEvent.objects.get(action=EventType.AUDIT_REVIEW_COMPLETED)
    assert event.actor_id == acted.admin.pk and event.team_id == team.pk
    assert event.payload["events_digest"] == expected
    assert event.payload["comment"]["sha256"] == hashlib.sha256(body["comment"].encode()).hexdigest()
    again = client_for(acted.admin).post(url, body, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "audit_review_completed"


def _completed_seq() -> int:
    return AuditEvent.objects.get(action=EventType.AUDIT_REVIEW_COMPLETED).sequence


@pytest.mark.django_db
def test_overdue_reviews_are_listed_as_overdue(client_for, team, acted):
    schedule_this_month()
    AuditReview.objects.filter(team=team).update(due_at=timezone.now() - timedelta(hours=1))
    rows = client_for(acted.admin).get(URL, {"overdue": "true"}).json()["results"]
    assert len(rows) == 1 and rows[0]["overdue"] is True
    page = Client()
    page.force_login(acted.operator)
    html = page.get(reverse("analytics:dashboard")).content.decode()
    assert "Overdue audit-trail reviews" in html and f"/audit-reviews/{rows[0]['id']}/" in html
    page.force_login(member_of(TeamFactory(slug="delta"), "operator", username="delta-ops"))
    assert "Overdue audit-trail reviews" not in page.get(reverse("analytics:dashboard")).content.decode()
