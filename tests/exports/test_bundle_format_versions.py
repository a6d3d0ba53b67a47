"""Bundle format versions: new bundles carry ``Bundle-Format-Version``; replay rebuilds every artifact with the
format it was made with, so bundles packaged before the text policy keep replaying byte-identical."""

import hashlib
import io
from datetime import timedelta

import pytest
from django.core.files.storage import storages

from exports import narratives as n
from exports.bundle import extract_bundle
from exports.hooks import ApprovalRecord
from exports.models import ExportArtifact, NarrativeExport
from exports.services.packaging import (
    BUNDLE_FORMAT_VERSION,
    PackagingOutcome,
    bundle_build,
    export_package,
    export_replay,
    packaging_enqueue,
)
from tests.stored import plaintext_path

pytestmark = pytest.mark.django_db

PROVIDER = "tests.exports.test_bundle_format_versions.hostile_record"


def hostile_record(export):
    signature = n.Signature(
        stage_index=1,
        stage_name="QA \u202eapproval",
        required_role="qa_approver",
        signer_name="Avery\u200b Lindqvist",
        signed_at=export.created_at + timedelta(hours=1),
        meaning="Approved",
        comment="ok \x1b[31m",
        digest=export.narrative_digest,
        decision=n.Decision.APPROVE,
    )
    return ApprovalRecord(signatures=(signature,), document={"export_id": export.pk})


@pytest.fixture
def packaged(make_export, allow_packaging, settings, django_capture_on_commit_callbacks):
    settings.DOSSIER_APPROVAL_RECORD_PROVIDER = PROVIDER
    export = make_export()
    packaging_enqueue(export=export)
    assert export_package(export_id=export.pk) == PackagingOutcome.PACKAGED
    return NarrativeExport.objects.get(pk=export.pk)


def narrative_of(archive_path: str, tmp_path) -> tuple[str, str]:
    bag = extract_bundle(archive_path, tmp_path / "bag")
    return (bag / "data" / "narrative.md").read_text(), (bag / "bag-info.txt").read_text()


def test_new_bundles_are_the_current_format_and_say_so(packaged, tmp_path):
    artifact = ExportArtifact.objects.get(export=packaged)
    assert artifact.format_version == BUNDLE_FORMAT_VERSION == 4
    narrative, bag_info = narrative_of(plaintext_path(artifact.storage_path, tmp_path / "archive"), tmp_path)
    assert bag_info.startswith("Bundle-Format-Version: 4\n") or "\nBundle-Format-Version: 4\n" in bag_info
    assert "QA <U+202E>approval" in narrative and "Avery<U+200B> Lindqvist" in narrative
    assert "ok <U+001B>\\[31m" in narrative and "\x1b" not in narrative


def test_an_artifact_of_format_1_replays_identically_with_its_own_text_rules(packaged, tmp_path):
    """An artifact packaged by an earlier release: no Bundle-Format-Version line, control pictures for C0
    controls and format characters as they were in the approval record."""
    artifact = ExportArtifact.objects.select_related("signing_key").get(export=packaged)
    old = io.BytesIO()
    built = bundle_build(
        export=packaged, out=old, signing_key=artifact.signing_key, compression=artifact.compression, format_version=1
    )
    storage = storages["artifacts"]
    storage.delete(artifact.storage_path)
    storage.save(artifact.storage_path, io.BytesIO(old.getvalue()))
    ExportArtifact.objects.filter(pk=artifact.pk).update(sha256=built.sha256, size=built.size, format_version=1)

    narrative, bag_info = narrative_of(plaintext_path(artifact.storage_path, tmp_path / "archive"), tmp_path)
    assert "Bundle-Format-Version" not in bag_info
    assert "QA \u202eapproval" in narrative and "ok \u241b\\[31m" in narrative
    assert built.sha256 != artifact.sha256  # the formats really differ for this record

    result = export_replay(export=NarrativeExport.objects.get(pk=packaged.pk))
    assert result.identical and result.replayed_sha256 == hashlib.sha256(old.getvalue()).hexdigest()


def test_current_artifacts_replay_identically(packaged):
    assert export_replay(export=packaged).identical


def test_an_unknown_format_version_is_refused(packaged):
    from config.errors import Conflict

    ExportArtifact.objects.filter(export=packaged).update(format_version=9)
    with pytest.raises(Conflict) as caught:
        export_replay(export=NarrativeExport.objects.get(pk=packaged.pk))
    assert caught.value.code == "bundle_format_unknown"


def test_an_artifact_of_format_3_replays_identically_without_the_rendition(packaged, tmp_path):
    """Format 3 bundles, packaged before the rendition, rebuild without data/dossier.pdf and byte-identical."""
    artifact = ExportArtifact.objects.select_related("signing_key").get(export=packaged)
    old = io.BytesIO()
    built = bundle_build(
        export=packaged, out=old, signing_key=artifact.signing_key, compression=artifact.compression, format_version=3
    )
    storage = storages["artifacts"]
    storage.delete(artifact.storage_path)
    storage.save(artifact.storage_path, io.BytesIO(old.getvalue()))
    ExportArtifact.objects.filter(pk=artifact.pk).update(sha256=built.sha256, size=built.size, format_version=3)

    bag = extract_bundle(plaintext_path(artifact.storage_path, tmp_path / "archive"), tmp_path / "bag")
    assert not (bag / "data" / "dossier.pdf").exists()
    assert "Bundle-Format-Version: 3\n" in (bag / "bag-info.txt").read_text()
    result = export_replay(export=NarrativeExport.objects.get(pk=packaged.pk))
    assert result.identical and result.replayed_sha256 == hashlib.sha256(old.getvalue()).hexdigest()
