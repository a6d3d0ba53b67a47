"""DOSSIER_LOG_FORMAT=json: one JSON object per line, with export_id, run_id, error_code and request_id."""

import io
import json
import logging

import pytest
from django.test import Client

from config.logs import ContextFilter, JsonFormatter, logging_config
from exports.models import PackagingRun
from exports.services import packaging
from exports.services.packaging import export_package, packaging_enqueue
from exports.storage import StorageUnavailable

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_lines():
    """The root logger writing JSON lines to a buffer, as ``DOSSIER_LOG_FORMAT=json`` configures it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous)


def test_settings_select_the_json_formatter():
    config = logging_config(log_format="json", level="INFO")
    assert config["handlers"]["console"]["formatter"] == "json"
    assert logging_config(log_format="plain", level="INFO")["handlers"]["console"]["formatter"] == "plain"


def test_a_failed_packaging_run_logs_its_export_run_and_error_code(
    make_export, json_lines, allow_packaging, monkeypatch, django_capture_on_commit_callbacks
):
    from exports.tasks import package_execution_narrative_export

    monkeypatch.setattr(package_execution_narrative_export, "delay", lambda export_id: None)
    export = make_export()
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)

    def unavailable(staged, final_name):
        raise StorageUnavailable("bucket unreachable")

    monkeypatch.setattr(packaging, "artifact_publish", unavailable)
    with pytest.raises(StorageUnavailable):
        export_package(export_id=export.pk, final_attempt=True)
    run = PackagingRun.objects.get(export=export)
    (line,) = [line for line in json_lines() if line.get("error_code")]
    assert (line["export_id"], line["run_id"], line["error_code"]) == (export.pk, run.pk, "storage_unavailable")
    assert line["level"] == "WARNING" and line["time"].endswith("Z") and "bucket unreachable" in line["message"]


def test_a_request_logs_and_returns_its_request_id(json_lines, db):
    response = Client().get("/no-such-page", HTTP_X_REQUEST_ID="req-42")
    assert response.status_code == 404 and response["X-Request-ID"] == "req-42"
    (line,) = [line for line in json_lines() if line["logger"] == "django.request"]
    assert line["request_id"] == "req-42" and "no-such-page" in line["message"]
    generated = Client().get("/no-such-page", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"]
    assert generated != "bad id\n" and len(generated) == 32


def test_an_api_error_logs_its_code_with_the_request_id(json_lines, member, client_for):
    scientist = member("scientist", username="sam")
    response = client_for(scientist).get("/api/governance/audit-events", HTTP_X_REQUEST_ID="req-7")
    assert response.status_code == 403
    (line,) = [line for line in json_lines() if line.get("error_code") == "permission_denied"]
    assert line["request_id"] == "req-7" and line["logger"] == "config.api"
