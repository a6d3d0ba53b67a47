"""Row locks under real concurrency: PostgreSQL only, with committed data shared between threads."""

import threading
from datetime import timedelta

import pytest
from django.db import connection

from approvals.models import ApprovalHistory, ApprovalSignature, ApprovalStage
from approvals.services.monitor import sla_monitor_run
from exports.models import ExecutionEvent
from tests.approvals.factories import PASSWORD, crew_for, export_with_ladder, published_snapshot
from tests.factories import TeamFactory, member_of

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(*targets):
    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)

    def worker(index, target):
        try:
            barrier.wait(timeout=10)
            results[index] = target()
        except Exception as exc:  # surfaced by the assertions of the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.fixture
def setup():
    from exports.services.executions import execution_create
    from governance.choices import RoleKey
    from governance.models import Role

    for key, label in RoleKey.choices:  # a transactional test flushes the roles the migration seeded
        Role.objects.get_or_create(key=key, defaults={"label": label})
    team = TeamFactory(slug="alpha")
    crew = crew_for(team)
    execution = execution_create(team=team, title="Run", owner=crew.author)
    export = export_with_ladder(execution=execution, author=crew.author, snapshot=published_snapshot())
    return team, crew, execution, export


def test_two_concurrent_approvals_of_one_stage_give_one_200_and_one_409(setup):
    from rest_framework.test import APIClient

    team, crew, execution, export = setup
    other_reviewer = member_of(team, "reviewer", username="rev3")
    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    url = f"/api/experiment-console/sessions/{execution.pk}/exports/narrative/{export.pk}/approve"
    body = {"decision": "approve", "password": PASSWORD, "meaning": "Reviewed", "expected_stage_id": stage.pk}

    def sign_as(user):
        def call():
            client = APIClient()
            client.force_authenticate(user)
            return client.post(url, {**body, "username": user.username}, format="json").status_code

        return call

    statuses = run_together(sign_as(crew.reviewer), sign_as(other_reviewer))
    assert sorted(statuses) == [200, 409], statuses
    assert ApprovalSignature.objects.filter(stage=stage).count() == 1
    assert ExecutionEvent.objects.filter(event_type="narrative_export.approval.stage_completed").count() == 1


def test_two_monitors_in_parallel_never_double_mark(setup):
    team, crew, execution, export = setup
    snapshot = export.template_snapshot
    exports = [export] + [
        export_with_ladder(execution=execution, author=crew.author, snapshot=snapshot) for _ in range(19)
    ]
    for item in exports:
        stage = ApprovalStage.objects.get(ladder__export=item, status="in_progress")
        ApprovalStage.objects.filter(pk=stage.pk).update(
            due_at=stage.due_at - timedelta(hours=60), escalate_at=stage.escalate_at - timedelta(hours=60)
        )
    reports = run_together(lambda: sla_monitor_run(batch_size=3), lambda: sla_monitor_run(batch_size=3))
    assert not any(isinstance(r, Exception) for r in reports), reports
    assert sum(r.overdue for r in reports) == 20
    assert sum(r.escalated for r in reports) == 20
    assert ExecutionEvent.objects.filter(event_type="narrative_export.approval.stage_overdue").count() == 20
    assert ExecutionEvent.objects.filter(event_type="narrative_export.approval.stage_escalated").count() == 20
    assert ApprovalHistory.objects.filter(action="escalated").count() == 20


def test_signatures_and_history_refuse_deletion_in_the_database(setup):
    from django.db import DatabaseError, transaction

    team, crew, execution, export = setup
    stage = ApprovalStage.objects.get(ladder__export=export, status="in_progress")
    from approvals.services.ladders import stage_decide

    stage_decide(
        export_id=export.pk,
        actor=crew.reviewer,
        decision="approve",
        password=PASSWORD,
        expected_stage_id=stage.pk,
        username=crew.reviewer.username,
    )
    with pytest.raises(DatabaseError), transaction.atomic():
        ApprovalSignature.objects.all()._raw_delete(ApprovalSignature.objects.db)
    with pytest.raises(DatabaseError), transaction.atomic():
        ApprovalHistory.objects.update(reason="rewritten")
    assert ApprovalSignature.objects.count() == 1


def test_the_ladder_read_with_its_stages_locks_the_ladder_row_and_only_it(setup):
    """``ladder_lock_with_stages`` reads stages joined to the ladder FOR UPDATE OF the ladder: another transaction
    can neither lock the ladder nor change it until the holder commits, while stage rows stay unlocked."""
    import psycopg
    from django.db import transaction

    from approvals.selectors import export_lock, ladder_lock_with_stages

    team, crew, execution, export = setup
    settings_dict = connection.settings_dict
    dsn = psycopg.conninfo.make_conninfo(
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        user=settings_dict["USER"] or None,
        dbname=settings_dict["NAME"],
    )
    with transaction.atomic():
        ladder, stages = ladder_lock_with_stages(export=export_lock(export_id=export.pk), role_holder=crew.reviewer)
        assert [stage.ladder is ladder for stage in stages] == [True] * len(stages)
        assert [stage.holder_has_role for stage in stages] == [s.required_role == "reviewer" for s in stages]
        with psycopg.connect(dsn, autocommit=True) as other:
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("SELECT 1 FROM approvals_approvalladder WHERE id = %s FOR UPDATE NOWAIT", [ladder.pk])
            other.execute("SELECT 1 FROM approvals_approvalstage WHERE id = %s FOR UPDATE NOWAIT", [stages[0].pk])
