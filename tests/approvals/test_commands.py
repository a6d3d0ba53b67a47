import io

import pytest
from django.core.management import call_command

from approvals.models import ApprovalStage
from approvals.services.ladders import stage_decide
from exports.models import NarrativeExport
from tests.approvals.factories import PASSWORD

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("queue_narrative_export", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_blocked_by_the_guardrail_exits_3(export):
    code, out, _ = run(str(export.pk))
    assert code == 3
    assert "queued: False" in out
    assert "guardrail: awaiting_approval" in out
    assert "pending stage: 1. Scientific review (reviewer)" in out
    assert "forecast: 20" in out


def test_queued_exits_0(export, crew, packaging_calls):
    for user in (crew.reviewer, crew.qa, crew.compliance):
        stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
        stage_decide(
            export_id=export.pk,
            actor=user,
            username=user.username,
            decision="approve",
            password=PASSWORD,
            expected_stage_id=stage.pk,
        )
    NarrativeExport.objects.filter(pk=export.pk).update(status="failed")
    code, out, _ = run(str(export.pk))
    assert code == 0
    assert "queued: True" in out and "pending stage: none" in out
    assert packaging_calls == [export.pk, export.pk]


def test_unknown_export_exits_1(db):
    code, _, err = run("999999")
    assert code == 1 and err.startswith("error: Export 999999")


def test_already_packaged_is_an_error(export, crew):
    for user in (crew.reviewer, crew.qa, crew.compliance):
        stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
        stage_decide(
            export_id=export.pk,
            actor=user,
            username=user.username,
            decision="approve",
            password=PASSWORD,
            expected_stage_id=stage.pk,
        )
    NarrativeExport.objects.filter(pk=export.pk).update(status="packaged")
    code, _, err = run(str(export.pk))
    assert code == 1 and "packaged" in err
