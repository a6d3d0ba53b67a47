"""The Content-Security-Policy header, and pages that need no inline code beyond nonce-marked elements.

The browser test (tests/browser/test_content_security_policy.py) proves pages run under the policy in chromium;
these checks run everywhere and name the offending markup.
"""

import re

import pytest

pytestmark = pytest.mark.django_db

SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b([^>]*)>", re.IGNORECASE)
INLINE_HANDLER_OR_STYLE = re.compile(r"<[a-z][^>]*\s(on[a-z]+|style)\s*=", re.IGNORECASE)


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";"))}


def inline_code_without_nonce(html: str, nonce: str | None) -> list[str]:
    found = []
    for match in SCRIPT_OR_STYLE.finditer(html):
        tag, attributes = match.group(1).lower(), match.group(2)
        external = tag == "script" and "src=" in attributes
        data_block = tag == "script" and re.search(r'type="application/(ld\+)?json"', attributes)
        if not (external or data_block or (nonce and f'nonce="{nonce}"' in attributes)):
            found.append(match.group(0))
    return found + [match.group(0) for match in INLINE_HANDLER_OR_STYLE.finditer(html)]


def nonce_of(response) -> str | None:
    sources = directives(response).get("script-src", [])
    return next((source[len("'nonce-") : -1] for source in sources if source.startswith("'nonce-")), None)


def test_the_policy_is_strict(client):
    response = client.get("/accounts/login/")
    assert directives(response) == {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }


def test_api_responses_carry_the_policy_too(api_client):
    response = api_client.get("/api/experiment-console/sessions")
    assert response.status_code == 401
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_api_docs_run_their_inline_script_and_style_by_nonce_only(client, scientist):
    client.force_login(scientist)
    first, second = client.get("/api/docs/"), client.get("/api/docs/")
    nonce = nonce_of(first)
    assert nonce and nonce != nonce_of(second)  # fresh for every response
    assert f"'nonce-{nonce}'" in directives(first)["style-src"]
    html = first.content.decode()
    assert html.count(f'nonce="{nonce}"') == 2  # the start-up script and the style block
    assert inline_code_without_nonce(html, nonce) == []
    assert "'unsafe-inline'" not in first["Content-Security-Policy"]


def test_pages_carry_no_inline_code(client, member, team):
    from exports.services.executions import execution_create
    from tests.approvals.factories import export_with_ladder, published_snapshot

    operator = member("operator", "admin", username="ops")
    operator.is_staff = operator.is_superuser = True
    operator.save()
    author = member("scientist", username="author")
    execution = execution_create(team=team, title="Assay", owner=author)
    export = export_with_ladder(execution=execution, author=author, snapshot=published_snapshot())
    client.force_login(operator)
    paths = [
        "/",
        "/exports/",
        f"/exports/{export.pk}/",
        f"/exports/executions/{execution.pk}/preview",
        "/governance/dashboard",
        "/governance/dashboard/panels",
        "/governance/reports",
        "/admin/",
        "/admin/governance/workflowtemplatesnapshot/",
        "/admin/django_celery_beat/periodictask/add/",
        "/api/experiment-console/sessions",
    ]
    for path in paths:
        response = client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, path
        assert "Content-Security-Policy" in response, path
        assert inline_code_without_nonce(response.content.decode(), nonce_of(response)) == [], path


def test_the_csrf_failure_page_carries_no_inline_code():
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post("/accounts/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403
    assert inline_code_without_nonce(response.content.decode(), nonce_of(response)) == []
    assert "Request refused" in response.content.decode()
    assert "Content-Security-Policy" in response
