"""Designed 404, 403 and 500 pages with the site's look and no debug details; the admin in Dossier's name;
`make run`'s seed says what happened (docs/pages.md)."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from config import handlers
from tests.factories import member_of

pytestmark = pytest.mark.django_db


def test_a_missing_or_foreign_page_is_the_designed_404(team, settings):
    settings.DEBUG = False
    client = Client()
    client.force_login(member_of(team, "scientist", username="sci"))
    response = client.get("/exports/987654/")
    html = response.content.decode()
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in html and 'href="/static/css/app.css"' in html
    assert "URLconf" not in html and "Traceback" not in html and "DEBUG" not in html


def test_the_api_keeps_its_json_errors(team, settings):
    settings.DEBUG = False
    response = Client().get("/api/no-such-endpoint")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_403_and_500_pages_have_the_sites_look_and_no_details(rf):
    from django.core.exceptions import PermissionDenied

    forbidden = handlers.permission_denied(rf.get("/exports/1/"), PermissionDenied("secret reason"))
    assert forbidden.status_code == 403
    assert "<h1>Not allowed</h1>" in forbidden.content.decode() and "secret reason" not in forbidden.content.decode()
    failed = handlers.server_error(rf.get("/exports/1/"))
    html = failed.content.decode()
    assert failed.status_code == 500
    assert "<h1>Something went wrong</h1>" in html and 'href="/static/css/app.css"' in html
    assert "Traceback" not in html
    assert handlers.server_error(rf.get("/api/x")).status_code == 500


def test_an_unexpected_error_shows_the_500_page(team, settings, monkeypatch):
    from approvals import views

    settings.DEBUG = False
    monkeypatch.setattr(views, "exports_for_user", lambda **kwargs: 1 / 0)
    client = Client(raise_request_exception=False)
    client.force_login(member_of(team, "scientist", username="sci"))
    response = client.get("/exports/")
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode() and "ZeroDivisionError" not in response.content.decode()


def test_the_admin_is_branded_dossier_with_links_back_to_the_app(team):
    admin = member_of(team, "admin", username="boss")
    get_user_model().objects.filter(pk=admin.pk).update(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    html = client.get("/admin/").content.decode()
    assert "Dossier administration" in html and "Django administration" not in html
    assert "<title>Teams, ladders, templates and the audit trail | Dossier admin</title>" in html
    assert 'href="/exports/"' in html and 'href="/governance/dashboard"' in html


def test_the_seed_reports_the_packaged_export_as_packaged(django_capture_on_commit_callbacks):
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", stdout=out)
    text = out.getvalue()
    assert "approved and packaged export" in text
    assert "once the worker runs" not in text and "once a worker runs" not in text
