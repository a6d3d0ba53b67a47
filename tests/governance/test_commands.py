import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from exports.models import Evidence, Execution
from governance.models import AuditEvent, Membership
from governance.services.audit import audit_chain_verify

pytestmark = pytest.mark.django_db


def test_setup_schedules_is_idempotent(settings, capsys):
    call_command("setup_schedules")
    first = {task.name: (task.task, task.interval.every) for task in PeriodicTask.objects.all()}
    assert first["audit-chain-verification"] == ("governance.verify_audit_chain", 86400)
    call_command("setup_schedules")
    assert {task.name: (task.task, task.interval.every) for task in PeriodicTask.objects.all()} == first
    assert "unchanged" in capsys.readouterr().out


def test_setup_schedules_follows_changed_settings(settings):
    call_command("setup_schedules")
    from datetime import timedelta

    settings.DOSSIER_SCHEDULES = {
        **settings.DOSSIER_SCHEDULES,
        "audit-chain-verification": {"task": "governance.verify_audit_chain", "every": timedelta(hours=6)},
    }
    call_command("setup_schedules")
    assert PeriodicTask.objects.get(name="audit-chain-verification").interval.every == 6 * 3600


def test_seed_demo_is_idempotent_and_gives_every_demo_user_their_roles(settings):
    call_command("seed_demo")
    counts = (Execution.objects.count(), Evidence.objects.count(), get_user_model().objects.count())
    audit_rows = AuditEvent.objects.count()
    call_command("seed_demo")
    assert (Execution.objects.count(), Evidence.objects.count(), get_user_model().objects.count()) == counts
    assert AuditEvent.objects.count() == audit_rows
    roles = set(Membership.objects.filter(user__username="demo-approver").values_list("role__key", flat=True))
    assert roles == {"qa_approver", "pi"}
    assert get_user_model().objects.get(username="demo-operator").check_password(settings.DEMO_PASSWORD)
    assert audit_chain_verify().ok


def test_admin_pages_render_for_staff(client, settings):
    call_command("seed_demo")
    admin = get_user_model().objects.get(username="demo-admin")
    client.force_login(admin)
    for url in (
        "/admin/",
        "/admin/governance/team/",
        "/admin/governance/auditevent/",
        "/admin/exports/execution/",
        "/admin/exports/executionevent/",
        "/admin/exports/evidence/",
    ):
        assert client.get(url).status_code == 200, url
    assert client.get("/admin/governance/auditevent/add/").status_code == 403
