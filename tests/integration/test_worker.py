import pytest

from governance.models import AuditChainVerification
from governance.services.audit import audit_record
from governance.tasks import verify_audit_chain
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.worker]


def test_a_real_worker_runs_a_task_sent_through_redis(celery_worker_process, team):
    for n in range(3):
        audit_record(action="test.event", team_id=team.pk, payload={"n": n})
    worker = celery_worker_process()
    verify_audit_chain.delay()
    wait_for(lambda: AuditChainVerification.objects.exists(), timeout=60, what="the worker's verification row")
    check = AuditChainVerification.objects.get()
    assert check.ok and check.rows == 3
    assert "governance.verify_audit_chain" in worker.log()
