import pytest
from django.core.management import call_command

from exports.models import ExportArtifact, NarrativeExport
from exports.services.packaging import packaging_enqueue
from governance.models import AuditEvent
from tests.exports.bagtools import flip_byte, repack, unpack
from tests.stored import alter_plaintext, flip_stored_byte, plaintext_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def packaged(make_export, allow_packaging, django_capture_on_commit_callbacks):
    export = make_export()
    with django_capture_on_commit_callbacks(execute=True):
        packaging_enqueue(export=export)
    return NarrativeExport.objects.get(pk=export.pk)


def run(*args):
    """(exit code, stdout, stderr) of a management command."""
    from io import StringIO

    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def archive_path(export, directory) -> str:
    """The archive's plaintext (the stored object is encrypted at rest), as a file tools can read."""
    return str(plaintext_path(ExportArtifact.objects.get(export=export).storage_path, directory))


def stored_name(export) -> str:
    return ExportArtifact.objects.get(export=export).storage_path


def test_verify_export_accepts_a_packaged_export_by_id_and_by_path(packaged, tmp_path):
    code, out, _ = run("verify_export", str(packaged.pk))
    assert code == 0 and out.startswith(f"valid: {packaged.pk}")
    code, out, _ = run("verify_export", archive_path(packaged, tmp_path))
    assert code == 0 and "signed by key" in out


def test_a_repacked_but_untouched_bag_still_verifies(packaged, tmp_path):
    bag = unpack(archive_path(packaged, tmp_path / "archive"), tmp_path / "bag")
    code, out, _ = run("verify_export", str(repack(bag, tmp_path / "same.tar.gz")))
    assert code == 0, out


@pytest.mark.parametrize(
    "relative, expected",
    [
        ("data/narrative.md", "digest_mismatch"),
        ("data/events.ndjson", "digest_mismatch"),
        ("bag-info.txt", "digest_mismatch"),
        ("signatures/tagmanifest-sha512.txt.sig", "signature_invalid"),
    ],
)
def test_one_flipped_byte_makes_verify_export_exit_3_and_say_what(packaged, tmp_path, relative, expected):
    bag = unpack(archive_path(packaged, tmp_path / "archive"), tmp_path / "bag")
    flip_byte(bag / relative, offset=5)
    code, out, _ = run("verify_export", str(repack(bag, tmp_path / "tampered.tar.gz")))
    assert code == 3
    assert expected in out and relative in out


def test_a_flipped_byte_in_the_stored_archive_makes_verify_export_exit_3(packaged):
    alter_plaintext(stored_name(packaged), 200)  # re-encrypted by someone holding the keyring
    code, out, _ = run("verify_export", str(packaged.pk))
    assert code == 3 and out.startswith("invalid:")


def test_a_flipped_byte_in_the_stored_ciphertext_makes_verify_export_exit_3(packaged):
    flip_stored_byte(stored_name(packaged), 200)
    code, out, _ = run("verify_export", str(packaged.pk))
    assert code == 3 and out.startswith("invalid:") and "decryption_failed" in out


def test_verify_export_errors_exit_1(db, tmp_path):
    assert run("verify_export", "12345")[0] == 1
    assert run("verify_export", "no-such-file.tar.zst")[0] == 1
    garbage = tmp_path / "garbage.tar.zst"
    garbage.write_bytes(b"not an archive")
    code, out, _ = run("verify_export", str(garbage))
    assert code == 3 and "archive_unreadable" in out


def test_replay_export_reports_an_identical_digest(packaged):
    code, out, _ = run("replay_export", str(packaged.pk), "--dry-run")
    assert code == 0 and out.rstrip().endswith("identical")
    assert not AuditEvent.objects.filter(action="narrative_export.replayed").exists()
    code, out, _ = run("replay_export", str(packaged.pk))
    assert code == 0
    assert AuditEvent.objects.filter(action="narrative_export.replayed").count() == 1


def test_replay_export_refuses_unpackaged_or_unknown_exports(make_export):
    export = make_export()
    code, _, err = run("replay_export", str(export.pk))
    assert code == 1 and "no artifact" in err
    assert run("replay_export", "999999")[0] == 1


def test_rotate_signing_key_prints_the_new_key(db):
    code, out, _ = run("rotate_signing_key")
    assert code == 0 and out.startswith("active signing key: ")


def test_every_verify_export_result_is_recorded_in_the_audit_trail(packaged):
    from governance.models import AuditEvent

    assert run("verify_export", str(packaged.pk))[0] == 0
    alter_plaintext(stored_name(packaged), 200)
    assert run("verify_export", str(packaged.pk))[0] == 3
    rows = list(AuditEvent.objects.filter(action="narrative_export.artifact.verified").order_by("sequence"))
    assert [(row.payload["ok"], row.payload["source"], row.object_id) for row in rows] == [
        (True, "verify_export", str(packaged.pk)),
        (False, "verify_export", str(packaged.pk)),
    ]
    assert rows[1].payload["problems"] and rows[1].team_id == packaged.execution.team_id
