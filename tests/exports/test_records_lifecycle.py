"""Legal holds and enforced retention (docs/records-lifecycle.md), against PostgreSQL and real artifact storage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import storages
from django.core.management import call_command
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from exports.models import (
    Evidence,
    ExecutionEvent,
    ExportArtifact,
    LegalHold,
    NarrativeExport,
    RetentionTombstone,
)
from exports.selectors.holds import export_held, held_export_ids, team_hold_active
from exports.services.holds import legal_hold_place, legal_hold_release
from exports.services.packaging import packaging_enqueue
from exports.services.retention import retention_enforce
from governance.models import AuditEvent
from governance.services.audit import text_digest

pytestmark = pytest.mark.django_db

HOLDS = "/api/governance/legal-holds"


@pytest.fixture
def packaged(make_export, allow_packaging, django_capture_on_commit_callbacks):
    def make(**kwargs):
        export = make_export(**kwargs)
        with django_capture_on_commit_callbacks(execute=True):
            packaging_enqueue(export=export)
        export = NarrativeExport.objects.select_related("execution").get(pk=export.pk)
        assert export.status == "packaged"
        return export

    return make


@pytest.fixture
def officer(member):
    return member("compliance", username="officer")


def artifact_url(export, suffix="artifact"):
    return f"/api/experiment-console/sessions/{export.execution_id}/exports/narrative/{export.pk}/{suffix}"


def past_retention(export, *, evidence=False):
    past = timezone.now() - timedelta(days=1)
    ExportArtifact.objects.filter(export=export).update(retain_until=past)
    NarrativeExport.objects.filter(pk=export.pk).update(retain_until=past)
    if evidence:
        Evidence.objects.filter(execution_id=export.execution_id).update(retain_until=past)


def pruned_metric(client, category: str) -> float:
    text = client.get("/metrics").content.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "dossier_retention_pruned_total" and sample.labels.get("category") == category:
                return sample.value
    return 0.0


def test_a_held_export_survives_retention_keeps_downloading_and_goes_with_the_first_run_after_release(
    packaged, officer, scientist, client_for, settings
):
    settings.METRICS_ALLOW_ANONYMOUS = True
    export = packaged()
    artifact = ExportArtifact.objects.get(export=export)
    storage = storages["artifacts"]
    evidence_files = list(Evidence.objects.filter(execution_id=export.execution_id, kind="file"))
    assert evidence_files and all(storage.exists(e.storage_path) for e in evidence_files)
    past_retention(export, evidence=True)
    created = client_for(officer).post(
        HOLDS, {"scope": "export", "team": "alpha", "export_id": export.pk, "reason": "FDA inquiry 7"}, format="json"
    )
    assert created.status_code == 201, created.content
    hold_id = created.json()["id"]
    assert (
        export_held(export)
        and held_export_ids([export.pk, 0]) == {export.pk}
        and not team_hold_active(export.execution.team_id)
    )
    metric_before = pruned_metric(client_for(scientist), "artifact")

    held_run = retention_enforce()

    assert held_run.categories["artifact"].held == 1 and held_run.categories["artifact"].purged == 0
    assert held_run.categories["evidence"].held == len(evidence_files)  # the held export carries them
    assert storage.exists(artifact.storage_path)
    response = client_for(scientist).get(artifact_url(export))
    assert response.status_code == 200 and b"".join(response.streaming_content)
    assert NarrativeExport.objects.get(pk=export.pk).status == "packaged"  # a hold changes no status

    released = client_for(officer).post(f"{HOLDS}/{hold_id}/release", {"reason": "Inquiry closed"}, format="json")
    assert released.status_code == 200 and released.json()["active"] is False
    assert storage.exists(artifact.storage_path), "releasing purges nothing by itself"

    run = retention_enforce()

    counts = run.categories
    assert counts["artifact"].purged == 1 and counts["evidence"].purged == len(evidence_files)
    assert pruned_metric(client_for(scientist), "artifact") - metric_before == counts["artifact"].purged
    assert not storage.exists(artifact.storage_path)
    assert not any(storage.exists(e.storage_path) for e in evidence_files)
    stored = NarrativeExport.objects.get(pk=export.pk)
    assert stored.status == "expired"
    tombstone = RetentionTombstone.objects.get(artifact=artifact)
    assert (tombstone.sha256, tombstone.size, tombstone.rule) == (artifact.sha256, artifact.size, "retain_until")
    gone = client_for(scientist).get(artifact_url(export))
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "artifact_expired"
    assert retention_enforce().purged == 0, "a second run finds nothing"


def test_a_team_hold_covers_every_export_and_its_events_reach_every_execution(
    packaged, officer, scientist, execution, team
):
    from exports.services.executions import execution_create

    export = packaged()
    quiet = execution_create(team=team, title="Second run", owner=scientist)
    past_retention(export)
    hold = legal_hold_place(actor=officer, team=team, scope="team", reason="Litigation hold: matter 12")
    assert team_hold_active(team.pk) and export_held(export)
    for pk in (execution.pk, quiet.pk):
        event = ExecutionEvent.objects.filter(execution_id=pk, event_type="governance.legal_hold.placed").get()
        assert event.payload["legal_hold_id"] == hold.pk and event.payload["reason"] == "Litigation hold: matter 12"
    audit = AuditEvent.objects.filter(action="governance.legal_hold.placed")
    assert audit.count() == 2 and audit.first().payload["reason"] == text_digest("Litigation hold: matter 12")

    assert retention_enforce().categories["artifact"].held == 1
    legal_hold_release(actor=officer, hold_id=hold.pk, reason="Settled")
    assert ExecutionEvent.objects.filter(event_type="governance.legal_hold.released").count() == 2
    assert retention_enforce().categories["artifact"].purged == 1


def test_dry_run_reports_the_same_and_changes_nothing(packaged):
    export = packaged()
    past_retention(export)
    artifact = ExportArtifact.objects.get(export=export)
    out = __import__("io").StringIO()
    call_command("enforce_retention", "--dry-run", stdout=out)
    assert "artifact: due 1, held 0, would purge 1" in out.getvalue()
    assert storages["artifacts"].exists(artifact.storage_path)
    assert NarrativeExport.objects.get(pk=export.pk).status == "packaged"
    assert not RetentionTombstone.objects.exists()
    out = __import__("io").StringIO()
    call_command("enforce_retention", stdout=out)
    assert "artifact: due 1, held 0, purged 1" in out.getvalue()


def test_keep_versions_purges_older_versions_at_once_in_governance_mode_only(packaged):
    first, second, third = packaged(), packaged(), packaged()
    NarrativeExport.objects.filter(pk__in=[first.pk, second.pk, third.pk]).update(retention_keep_versions=2)
    NarrativeExport.objects.filter(pk=first.pk).update(retention_mode="compliance")
    ExportArtifact.objects.filter(export=first).update(retention_mode="compliance")
    assert retention_enforce().purged == 0, "the compliance-mode version waits for its own date"
    NarrativeExport.objects.filter(pk=first.pk).update(retention_mode="governance")
    ExportArtifact.objects.filter(export=first).update(retention_mode="governance")
    run = retention_enforce()
    assert run.categories["artifact"].purged == 1
    assert RetentionTombstone.objects.get().rule == "keep_versions"
    assert [e.status for e in NarrativeExport.objects.order_by("version")] == ["expired", "packaged", "packaged"]


def test_a_run_has_a_fixed_number_of_queries_per_batch(packaged):
    exports = [packaged() for _ in range(4)]
    for export in exports:
        past_retention(export)
    small = retention_enforce(batch_size=1)
    assert small.batches == 4
    ExportArtifact.objects.update(expired_at=None)  # put them back to purge again, all in one batch
    NarrativeExport.objects.update(status="packaged")
    RetentionTombstone.objects.all().delete()
    large = retention_enforce(batch_size=10)
    assert large.batches == 1
    assert large.max_batch_queries == small.max_batch_queries


def test_compliance_mode_refuses_shortening_for_every_role_superusers_included(packaged, member, client_for):
    export = packaged()
    NarrativeExport.objects.filter(pk=export.pk).update(retention_mode="compliance")
    url = f"/api/governance/exports/{export.pk}/retention"
    current = NarrativeExport.objects.get(pk=export.pk).retain_until
    superuser = member("auditor", username="root")
    superuser.is_superuser = superuser.is_staff = True
    superuser.save()
    for user in (member("compliance", username="c1"), member("admin", username="a1"), superuser):
        response = client_for(user).post(
            url, {"retain_until": (current - timedelta(days=1)).isoformat(), "reason": "Early"}, format="json"
        )
        assert response.status_code == 409 and response.json()["error"]["code"] == "retention_locked", user
    assert NarrativeExport.objects.get(pk=export.pk).retain_until == current
    later = current + timedelta(days=30)
    extended = client_for(superuser).post(url, {"retain_until": later.isoformat()}, format="json")
    assert extended.status_code == 200
    assert ExportArtifact.objects.get(export=export).retain_until == later
    assert ExecutionEvent.objects.filter(event_type="narrative_export.retention.extended").count() == 1


def test_governance_mode_shortening_needs_a_reason_and_is_audited(packaged, officer, member, client_for):
    export = packaged()
    url = f"/api/governance/exports/{export.pk}/retention"
    earlier = (NarrativeExport.objects.get(pk=export.pk).retain_until - timedelta(days=3)).isoformat()
    client = client_for(officer)
    assert client.post(url, {"retain_until": earlier}, format="json").status_code == 400
    assert client.post(url, {"retain_until": earlier, "extra": 1}, format="json").json()["error"]["code"] == (
        "unknown_fields"
    )
    assert client.post(url, {"retain_until": "soon", "reason": "x"}, format="json").status_code == 400
    scientist_try = client_for(member("scientist", username="s2")).post(
        url, {"retain_until": earlier, "reason": "x"}, format="json"
    )
    assert scientist_try.status_code == 403
    done = client_for(officer).post(url, {"retain_until": earlier, "reason": "Duplicate of v2"}, format="json")
    assert done.status_code == 200 and done.json()["retention_mode"] == "governance"
    row = AuditEvent.objects.get(action="narrative_export.retention.shortened")
    assert row.payload["reason"] == text_digest("Duplicate of v2")


def test_holds_api_roles_validation_and_other_teams(packaged, officer, member, other_team, client_for):
    export = packaged()
    auditor = member("auditor", username="aud")
    outsider = member("compliance", username="beta-officer", in_team=other_team)
    scientist = member("scientist", username="sci2")
    body = {"scope": "team", "team": "alpha", "reason": "Inspection"}
    assert client_for(scientist).post(HOLDS, body, format="json").status_code == 403
    assert client_for(auditor).post(HOLDS, body, format="json").status_code == 403
    assert client_for(outsider).post(HOLDS, body, format="json").status_code == 404
    assert client_for(officer).post(HOLDS, {**body, "reason": "  "}, format="json").status_code == 400
    assert client_for(officer).post(HOLDS, {**body, "scope": "export"}, format="json").status_code == 400
    assert client_for(officer).post(HOLDS, {**body, "colour": "red"}, format="json").status_code == 400
    created = client_for(officer).post(HOLDS, body, format="json")
    assert created.status_code == 201 and created.json()["scope"] == "team"
    hold_id = created.json()["id"]
    assert client_for(auditor).get(f"{HOLDS}/{hold_id}").status_code == 200
    assert [h["id"] for h in client_for(auditor).get(HOLDS).json()["results"]] == [hold_id]
    assert client_for(scientist).get(f"{HOLDS}/{hold_id}").status_code == 403
    assert client_for(scientist).get(HOLDS).status_code == 403
    assert client_for(outsider).get(f"{HOLDS}/{hold_id}").status_code == 404
    assert client_for(outsider).get(HOLDS).json()["results"] == []
    release = f"{HOLDS}/{hold_id}/release"
    assert client_for(outsider).post(release, {"reason": "x"}, format="json").status_code == 404
    assert client_for(auditor).post(release, {"reason": "x"}, format="json").status_code == 403
    assert client_for(officer).post(release, {"reason": "Done"}, format="json").status_code == 200
    again = client_for(officer).post(release, {"reason": "Done"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "legal_hold_released"
    other_export = {"scope": "export", "team": "alpha", "export_id": 10**9, "reason": "x"}
    assert client_for(officer).post(HOLDS, other_export, format="json").status_code == 404
    retention = client_for(outsider).post(
        f"/api/governance/exports/{export.pk}/retention", {"retain_until": "2099-01-01T00:00:00Z"}, format="json"
    )
    assert retention.status_code == 404
    detail = client_for(officer).get(artifact_url(export, "")[:-1])
    assert detail.json()["retention_mode"] == "governance" and detail.json()["legal_holds"] == []


def test_the_legal_hold_command_exit_codes(packaged, officer, scientist, capsys):
    export = packaged()

    def run(*argv) -> int:
        try:
            call_command("legal_hold", *argv)
        except SystemExit as exited:
            return int(exited.code or 0)
        return 0

    assert run("apply", "--actor", "officer", "--team", "alpha", "--export", str(export.pk), "--reason", "Audit") == 0
    hold = LegalHold.objects.get()
    assert hold.scope == "export" and hold.export_id == export.pk
    assert run("apply", "--actor", "sci", "--team", "alpha", "--reason", "Mine") == 2
    assert run("apply", "--actor", "nobody", "--team", "alpha", "--reason", "x") == 2
    assert run("apply", "--actor", "officer", "--team", "alpha", "--reason", "") == 1
    assert run("release", "--actor", "officer", "--reason", "x") == 1
    assert run("release", str(hold.pk + 1000), "--actor", "officer", "--reason", "x") == 1
    capsys.readouterr()
    assert run("list", "--actor", "officer", "--active") == 0
    assert f"{hold.pk}\texport {export.pk} of team alpha\tactive" in capsys.readouterr().out
    assert run("release", str(hold.pk), "--actor", "sci", "--reason", "x") == 2
    assert run("release", str(hold.pk), "--actor", "officer", "--reason", "Closed") == 0
    assert run("release", str(hold.pk), "--actor", "officer", "--reason", "Closed") == 1
    assert run("list", "--actor", "sci") == 2


def test_purged_evidence_cannot_be_exported_again(make_export, evidence_set, selection):
    from config.errors import Conflict

    Evidence.objects.filter(pk=evidence_set["file"].pk).update(retain_until=timezone.now() - timedelta(days=1))
    assert retention_enforce().categories["evidence"].purged == 1
    assert not storages["artifacts"].exists(evidence_set["file"].storage_path)
    with pytest.raises(Conflict) as refused:
        make_export()
    assert refused.value.code == "evidence_purged"
    assert make_export(selection=[item for item in selection if item["kind"] != "file"]).version == 1


def test_retention_terms_come_from_the_template_snapshot(published_template, evidence_set, packaged):
    from governance.models import WorkflowTemplate
    from governance.services.templates import template_create, template_publish

    export = packaged()
    artifact = ExportArtifact.objects.get(export=export)
    assert (export.retention_mode, export.retention_keep_versions) == ("governance", None)
    assert (artifact.retain_until, artifact.retention_mode) == (export.retain_until, "governance")
    assert abs((evidence_set["file"].retain_until - timezone.now()) - timedelta(days=30)) < timedelta(minutes=5)

    source = WorkflowTemplate.objects.get(template_key="standard-release")
    locked = template_create(
        actor=None,
        forked_from=source,
        records={"retention_mode": "compliance", "retention_keep_versions": 3, "ladder_expires_after_hours": 72},
    )
    snapshot = template_publish(template=locked)
    assert '"retention_mode":"compliance"' in snapshot.canonical_json and snapshot.format_version == 4
    strict = packaged()
    assert (strict.retention_mode, strict.retention_keep_versions) == ("compliance", 3)
    assert ExportArtifact.objects.get(export=strict).retention_mode == "compliance"
    from exports.services.evidence import notebook_entry_create

    note = notebook_entry_create(execution=strict.execution, actor=strict.author, title="Later", body="text")
    assert note.retention_mode == "compliance"
