"""The daily retention task run by a real Celery worker on Redis and PostgreSQL (docs/records-lifecycle.md): a held
export survives it past its date, and the first run after the release purges it from storage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import storages
from django.utils import timezone

from exports.models import ExportArtifact, NarrativeExport
from exports.services.executions import execution_create
from exports.services.holds import legal_hold_place, legal_hold_release
from exports.services.narrative_exports import export_create
from exports.services.packaging import packaging_enqueue
from exports.tasks import enforce_retention
from governance.models import ScheduledJobRun
from tests.exports.factories import published_template_create
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.worker]


def test_the_worker_skips_a_held_export_and_purges_it_after_release(
    celery_worker_process, tmp_path, settings, team, member
):
    published_template_create()
    settings.DOSSIER_PACKAGING_GATES = ["tests.exports.gates.allow"]
    worker = celery_worker_process(
        {
            "DJANGO_SETTINGS_MODULE": "tests.integration.worker_settings",
            "ARTIFACT_STORAGE_BACKEND": "filesystem",
            "ARTIFACT_ROOT": str(tmp_path / "artifacts"),
            "DOSSIER_SIGNING_KEY_SECRET": django_settings.DOSSIER_SIGNING_KEY_SECRET,
        }
    )
    scientist, officer = member("scientist", username="sci"), member("compliance", username="officer")
    execution = execution_create(team=team, title="Assay", owner=scientist)
    export = export_create(execution=execution, actor=scientist, evidence=[])
    packaging_enqueue(export=export)
    wait_for(lambda: NarrativeExport.objects.get(pk=export.pk).status == "packaged", what=worker.log()[-3000:])
    artifact = ExportArtifact.objects.get(export=export)
    ExportArtifact.objects.filter(pk=artifact.pk).update(retain_until=timezone.now() - timedelta(days=1))
    hold = legal_hold_place(actor=officer, team=team, scope="export", export_id=export.pk, reason="Inquiry")

    enforce_retention.delay()
    wait_for(lambda: ScheduledJobRun.objects.filter(job="retention").exists(), what=worker.log()[-3000:])
    first = ScheduledJobRun.objects.get(job="retention")
    assert first.outcome == "succeeded" and first.details["categories"]["artifact"]["held"] == 1
    assert storages["artifacts"].exists(artifact.storage_path)

    legal_hold_release(actor=officer, hold_id=hold.pk, reason="Closed")
    enforce_retention.delay()
    wait_for(lambda: ExportArtifact.objects.get(pk=artifact.pk).expired_at is not None, what=worker.log()[-3000:])
    assert NarrativeExport.objects.get(pk=export.pk).status == "expired"
    assert not storages["artifacts"].exists(artifact.storage_path)
    assert "exports.enforce_retention" in worker.log()
