import pytest
from django.test import Client

from approvals.models import ApprovalSignature, ApprovalStage
from exports.models import NarrativeExport
from tests.approvals.factories import PASSWORD
from tests.factories import member_of

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(export) -> str:
    return f"/exports/{export.pk}/"


def test_the_page_shows_ladder_narrative_and_the_sign_form_to_a_signer(crew, export):
    response = logged_in(crew.reviewer).get(page(export))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Scientific review" in html and "Compliance sign-off" in html
    assert 'data-testid="sign-form"' in html
    assert export.narrative_digest in html
    assert "Dossier for execution" in html  # the rendered narrative


def test_no_sign_form_for_the_author_or_a_reader(crew, export, team):
    author = member_of(team, "reviewer", username="author")
    for user in (author, crew.auditor):
        response = logged_in(user).get(page(export))
        assert response.status_code == 200, response
        html = response.content.decode()
        assert 'data-testid="sign-form"' not in html
        assert 'data-testid="sign-refusal"' in html


def test_foreign_team_gets_404(export, other_team):
    outsider = member_of(other_team, "reviewer", username="outsider")
    assert logged_in(outsider).get(page(export)).status_code == 404


def test_anonymous_is_sent_to_login(client, export):
    response = client.get(page(export))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_narrative_is_sanitized(crew, export):
    NarrativeExport.objects.filter(pk=export.pk).update(
        narrative_markdown="# T\n\n<script>alert(1)</script>\n\n[x](javascript:alert(2)) **bold**\n"
    )
    html = logged_in(crew.reviewer).get(page(export)).content.decode()
    article = html[html.index('<article class="markdown">') :]
    assert "<script>" not in article and 'href="javascript:' not in article
    assert "<strong>bold</strong>" in article


def test_signing_through_the_page(crew, export):
    client = logged_in(crew.reviewer)
    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    form = {"expected_stage_id": stage.pk, "decision": "approve", "meaning": "Reviewed", "password": "wrong"}
    form["username"] = crew.reviewer.username
    response = client.post(f"/exports/{export.pk}/sign", form, follow=True)
    assert "password does not match" in response.content.decode()
    assert not ApprovalSignature.objects.exists()
    response = client.post(f"/exports/{export.pk}/sign", {**form, "password": PASSWORD}, follow=True)
    assert "Signed: stage approved." in response.content.decode()
    assert ApprovalSignature.objects.get().signer == crew.reviewer


def test_delegate_and_reset_through_the_page(crew, export):
    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    html = logged_in(crew.admin).get(page(export)).content.decode()
    assert f"/exports/{export.pk}/stages/{stage.pk}/delegate" in html
    response = logged_in(crew.operator).post(
        f"/exports/{export.pk}/stages/{stage.pk}/delegate",
        {f"d{stage.pk}-assignee": "rev2", f"d{stage.pk}-reason": "Holiday"},
        follow=True,
    )
    assert "Stage delegated to rev2." in response.content.decode()
    response = logged_in(crew.admin).post(
        f"/exports/{export.pk}/stages/{stage.pk}/reset", {f"r{stage.pk}-reason": "Restart"}, follow=True
    )
    assert "Stage reset" in response.content.decode()
    response = logged_in(crew.auditor).post(
        f"/exports/{export.pk}/stages/{stage.pk}/reset", {f"r{stage.pk}-reason": "x"}, follow=True
    )
    assert "needs one of the roles" in response.content.decode()


def test_detail_page_query_count_does_not_grow_with_history(crew, export, django_assert_max_num_queries):
    from approvals.services.ladders import stage_delegate

    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    for name in ("rev2", "rev", "rev2", "rev"):
        stage_delegate(export_id=export.pk, stage_id=stage.pk, actor=crew.operator, assignee=name, reason="swap")
    client = logged_in(crew.reviewer)
    with django_assert_max_num_queries(20):
        assert client.get(page(export)).status_code == 200


def test_export_list_page(crew, export):
    html = logged_in(crew.auditor).get("/exports/").content.decode()
    assert f"/exports/{export.pk}/" in html and "Scientific review" in html
