import pytest

from config.errors import Conflict, NotFound, ValidationFailed
from exports import narratives as n
from exports.choices import ExportStatus
from exports.models import ExecutionEvent, ExportAttachment, NarrativeExport
from exports.services.executions import execution_create
from exports.services.narrative_exports import EvidenceRef, export_create
from governance.models import AuditEvent
from tests.tampering import tamper_snapshot

pytestmark = pytest.mark.django_db

created_hook_calls: list = []


def record_created(export, actor):
    created_hook_calls.append((export.pk, actor.username, export.narrative_digest))


def test_creates_version_one_with_redacted_narrative_and_digest(make_export, evidence_set, published_template):
    export = make_export(notes="Ask qa@example.org")

    assert export.version == 1
    assert export.status == ExportStatus.AWAITING_APPROVAL
    assert export.template_snapshot == published_template
    assert "sam@example.org" not in export.narrative_markdown
    assert "qa@example.org" not in export.narrative_markdown
    assert "555-123-4567" not in export.narrative_markdown
    assert export.redaction_counts == {"EMAIL": 3, "PHONE": 2}
    assert export.narrative_digest == n.narrative_digest(export.narrative_markdown, export.evidence_manifest)
    assert [item["kind"] for item in export.evidence_manifest] == [
        "file",
        "notebook_entry",
        "qc_metric",
        "timeline_event",
    ]
    assert export.events_through_sequence == 3
    assert export.retain_until is not None and (export.retain_until - export.created_at).days == 30
    paths = sorted(ExportAttachment.objects.filter(export=export).values_list("bundle_path", flat=True))
    assert paths[0] == f"attachments/file/{evidence_set['file'].pk}-plate 1.csv"


def test_versions_increase_and_creation_is_recorded_on_timeline_and_audit(make_export, execution, settings):
    settings.DOSSIER_EXPORT_CREATED_HOOKS = []  # exports alone: the approvals hooks are tested in tests/approvals
    settings.DOSSIER_EXPORT_REPRESENTATION_HOOKS = []
    first, second = make_export(), make_export()
    assert (first.version, second.version) == (1, 2)
    created = ExecutionEvent.objects.filter(execution=execution, event_type="narrative_export.created")
    assert [event.payload["export_id"] for event in created] == [first.pk, second.pk]
    assert AuditEvent.objects.filter(action="narrative_export.created", object_id=str(second.pk)).exists()
    # The second narrative covers the first one's creation event too.
    assert second.events_through_sequence == first.events_through_sequence + 1


def test_rendering_the_stored_selection_again_gives_the_same_text(make_export):
    from exports.services.rendering import narrative_render

    export = make_export()
    evidence = [a.evidence for a in export.attachments.select_related("evidence") if a.evidence_id]
    events = [a.event for a in export.attachments.select_related("event__actor") if a.event_id]
    again = narrative_render(export=export, evidence=evidence, events=events)
    assert again.approval_text == export.narrative_markdown
    assert again.digest == export.narrative_digest


def failing_hook(export, actor):
    raise RuntimeError("ladder could not be instantiated")


def test_created_hooks_run_inside_the_transaction(make_export, settings):
    settings.DOSSIER_EXPORT_CREATED_HOOKS = ["tests.exports.test_services_narrative_exports.record_created"]
    created_hook_calls.clear()
    export = make_export()
    assert created_hook_calls == [(export.pk, "sci", export.narrative_digest)]


def test_a_failing_hook_rolls_the_export_back(make_export, settings):
    settings.DOSSIER_EXPORT_CREATED_HOOKS = ["tests.exports.test_services_narrative_exports.failing_hook"]
    with pytest.raises(RuntimeError):
        make_export()
    assert not NarrativeExport.objects.exists()
    assert not ExportAttachment.objects.exists()


@pytest.mark.parametrize(
    "selection",
    [
        [{"kind": "file", "id": 999_999}],
        [{"kind": "timeline_event", "id": 999_999}],
    ],
)
def test_unknown_evidence_is_refused_and_nothing_is_created(make_export, selection):
    with pytest.raises(NotFound) as caught:
        make_export(selection=selection)
    assert caught.value.code == "unknown_evidence"
    assert caught.value.details == {"evidence": selection}
    assert not NarrativeExport.objects.exists()


def test_evidence_under_the_wrong_kind_is_unknown(make_export, evidence_set):
    with pytest.raises(NotFound) as caught:
        make_export(selection=[{"kind": "qc_metric", "id": evidence_set["note"].pk}])
    assert caught.value.code == "unknown_evidence"


def test_evidence_of_another_execution_is_unknown(make_export, team, scientist, evidence_set):
    from exports.services.evidence import notebook_entry_create

    other = execution_create(team=team, title="Other run", owner=scientist)
    foreign = notebook_entry_create(execution=other, actor=scientist, title="elsewhere", body="x")
    with pytest.raises(NotFound) as caught:
        make_export(selection=[{"kind": "notebook_entry", "id": foreign.pk}])
    assert caught.value.code == "unknown_evidence"
    assert not NarrativeExport.objects.exists()


def test_duplicate_selection_is_refused(make_export, evidence_set):
    item = {"kind": "notebook_entry", "id": evidence_set["note"].pk}
    with pytest.raises(ValidationFailed) as caught:
        make_export(selection=[item, item])
    assert caught.value.code == "duplicate_evidence"


def test_without_a_published_template_creation_is_refused(execution, scientist):
    with pytest.raises(Conflict) as caught:
        export_create(execution=execution, actor=scientist, evidence=[])
    assert caught.value.code == "no_published_template"
    assert not NarrativeExport.objects.exists()


def test_a_drifted_snapshot_blocks_new_exports(make_export, published_template):
    tamper_snapshot(published_template.pk, '{"tampered":true}')
    with pytest.raises(Conflict) as caught:
        make_export()
    assert caught.value.code == "template_snapshot_drift"
    assert not NarrativeExport.objects.exists()


def test_an_explicit_template_key_must_be_published(make_export):
    with pytest.raises(Conflict) as caught:
        make_export(template_key="nope")
    assert caught.value.code == "template_not_published"


def test_classification_is_at_least_the_most_sensitive_evidence(make_export, evidence_set):
    evidence_set["qc"].__class__.objects.filter(pk=evidence_set["qc"].pk).update(classification="Confidential")
    assert make_export().classification == "Confidential"
    assert make_export(classification="Restricted").classification == "Restricted"
    assert make_export(classification="Public").classification == "Confidential"


def test_custom_redaction_rules_apply_and_the_policy_is_stored(make_export, settings, tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text('{"rules": [{"name": "SAMPLE_ID", "pattern": "SMP-[0-9]{6}", "strategy": "label"}]}')
    settings.DOSSIER_REDACTION = {"strategy": "label", "overrides": {}, "rules_file": str(rules)}
    export = make_export(notes="sample SMP-123456")
    assert "SMP-123456" not in export.narrative_markdown
    assert export.redaction_counts["SAMPLE_ID"] == 1
    assert export.redaction_policy["rules"]["rules"][0]["name"] == "SAMPLE_ID"


def test_export_with_empty_selection_narrates_the_timeline(make_export):
    export = make_export(selection=[])
    assert export.evidence_manifest == []
    assert "measurement.recorded" in export.narrative_markdown
    assert EvidenceRef  # the public input type
