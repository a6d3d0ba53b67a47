import pytest
from django.contrib.auth import get_user_model

from exports.models import ExportArtifact, NarrativeExport, PackagingRun, SigningKey
from exports.services.packaging import packaging_enqueue

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.org", "pw-for-tests")
    client.force_login(admin)
    return client


@pytest.fixture
def packaged(make_export, allow_packaging, django_capture_on_commit_callbacks):
    export = make_export()
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)
    return NarrativeExport.objects.get(pk=export.pk)


def test_export_admin_pages_render_read_only(staff_client, packaged):
    artifact, run, key = ExportArtifact.objects.get(), PackagingRun.objects.get(), SigningKey.objects.get()
    for model, pk in [("narrativeexport", packaged.pk), ("exportartifact", artifact.pk), ("packagingrun", run.pk)]:
        assert staff_client.get(f"/admin/exports/{model}/").status_code == 200
        assert staff_client.get(f"/admin/exports/{model}/{pk}/change/").status_code == 200
        assert staff_client.get(f"/admin/exports/{model}/add/").status_code == 403
    page = staff_client.get(f"/admin/exports/signingkey/{key.pk}/change/").content.decode()
    assert key.key_id in page and "ciphertext" not in page
    response = staff_client.post(f"/admin/exports/narrativeexport/{packaged.pk}/change/", {"notes": "edited"})
    assert response.status_code == 403
    assert NarrativeExport.objects.get(pk=packaged.pk).notes == ""


def test_admin_action_queues_through_the_service(staff_client, make_export, monkeypatch):
    from exports.tasks import package_execution_narrative_export

    monkeypatch.setattr(package_execution_narrative_export, "delay", lambda export_id: None)
    export = make_export()
    response = staff_client.post(
        "/admin/exports/narrativeexport/",
        {"action": "queue_for_packaging", "_selected_action": [export.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert NarrativeExport.objects.get(pk=export.pk).status == "queued"
