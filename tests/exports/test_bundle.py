"""The bundle engine (exports.bundle): pure tests, no Django, no database."""

import gzip
import hashlib
import io
import json
import random
import subprocess
import sys
import tarfile
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exports.bundle import (
    BundleError,
    BundleSpec,
    PayloadFile,
    Signer,
    build_bundle,
    dsse_pae,
    dsse_sign,
    dsse_verify,
    extract_bundle,
    generate_signer,
    key_id_for,
    load_public_key,
    private_key_from_bytes,
    private_key_from_pem,
    private_key_to_bytes,
    private_key_to_pem,
    public_key_pem,
    validate_payload_path,
    verify_bundle,
)
from exports.bundle.paths import decode_manifest_path, encode_manifest_path, tree_order
from exports.bundle.tagfiles import parse_manifest

CREATED_AT = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC)
NAME = "dossier-42-v3"
SIG = "signatures/tagmanifest-sha512.txt.sig"
DSSE = "signatures/attestation.dsse.json"
LONG_NAME = "attachments/remediation_report/" + "very-long-directory-name/" * 5 + "report.json"
BIG = random.Random(7).randbytes(9 << 20)  # more than two read chunks


@pytest.fixture(scope="module")
def signer() -> Signer:
    return generate_signer()


def export_metadata(digests: dict[str, str]) -> dict[str, object]:
    return {
        "id": 42,
        "execution_id": 7,
        "version": 3,
        "narrative_digest": hashlib.sha256(b"approved text").hexdigest(),
        "classification": "Confidential",
        "retain_until": "2031-05-01",
        "attachments": sorted(path for path in digests if path.startswith("data/attachments/")),
    }


def payload_files() -> list[PayloadFile]:
    return [
        PayloadFile.from_bytes("narrative.md", "# Dossier 42\n\nSigned by Dr. Ångström.\n".encode()),
        PayloadFile.from_bytes("events.ndjson", b'{"sequence":1}\n{"sequence":2}\n'),
        PayloadFile.from_bytes("approvals.json", b'[{"stage":"QA","meaning":"approved"}]\n'),
        PayloadFile.from_bytes("attachments/file/plate reader.bin", BIG),
        PayloadFile.from_bytes("attachments/notebook_entry/Protokoll Ä.md", "Ä\n".encode()),
        PayloadFile.from_bytes("attachments/qc_metric/empty.json", b""),
        PayloadFile.from_bytes(LONG_NAME, b"{}\n"),
    ]


def make_spec(signer: Signer, **changes: object) -> BundleSpec:
    spec = BundleSpec(
        name=NAME,
        created_at=CREATED_AT,
        bag_info=[
            ("External-Identifier", "42"),
            ("Bag-Group-Identifier", "7"),
            ("Source-Organization", "Example Lab GmbH"),
            ("Export-Version", "3"),
            ("Classification", "Confidential"),
        ],
        payload=payload_files(),
        export_metadata=export_metadata,
        signer=signer,
    )
    return replace(spec, **changes)


def build(spec: BundleSpec, **options: object) -> bytes:
    out = io.BytesIO()
    build_bundle(spec, out, **options)
    return out.getvalue()


@pytest.fixture(scope="module")
def bundle(signer: Signer) -> bytes:
    return build(make_spec(signer))


def keys_for(signer: Signer) -> dict[str, str]:
    return {signer.key_id: public_key_pem(signer.public_key)}


def read_members(archive: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(archive)).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return [(member, tar.extractfile(member).read() if member.isreg() else b"") for member in tar]


def repack(archive: bytes, edit: Callable[[list[tuple[tarfile.TarInfo, bytes]]], None]) -> bytes:
    """Rewrite the archive after ``edit`` changed its (member, content) list: tampering as an attacker would."""
    members = read_members(archive)
    edit(members)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, content in members:
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content) if member.isreg() else None)
    return zstandard.ZstdCompressor(level=1).compress(tar_bytes.getvalue())


def with_content(archive: bytes, path: str, change: Callable[[bytes], bytes]) -> bytes:
    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        for index, (member, content) in enumerate(members):
            if member.name == f"{NAME}/{path}":
                members[index] = (member, change(content))
                return
        raise AssertionError(f"{path} not in archive")

    return repack(archive, edit)


def flip(position: int, mask: int) -> Callable[[bytes], bytes]:
    def change(content: bytes) -> bytes:
        data = bytearray(content)
        data[position % len(data)] ^= mask
        return bytes(data)

    return change


def problems_of(archive: bytes, signer: Signer) -> set[tuple[str, str | None]]:
    return {(problem.code, problem.path) for problem in verify_bundle(io.BytesIO(archive), keys_for(signer)).problems}


def run(*command: str | Path, cwd: Path | None = None) -> None:
    # check=True: a missing tool or a rejected bag fails the test; nothing here is ever skipped.
    subprocess.run([str(part) for part in command], cwd=cwd, check=True, capture_output=True, timeout=120)


# --- independent validators ------------------------------------------------------------------------------


@pytest.mark.parametrize(("compression", "tar_flag"), [("zstd", "--zstd"), ("gzip", "--gzip")])
def test_independent_validators_accept_the_bag(signer: Signer, tmp_path: Path, compression: str, tar_flag: str) -> None:
    archive = tmp_path / f"{NAME}.tar"
    archive.write_bytes(build(make_spec(signer, compression=compression)))
    (tmp_path / "pub.pem").write_text(public_key_pem(signer.public_key))
    extracted = tmp_path / "x"
    extracted.mkdir()
    run("tar", tar_flag, "-xf", archive, "-C", extracted)
    bag = extracted / NAME

    run(sys.executable, "-m", "bagit", "--validate", bag)
    run("sha512sum", "--strict", "-c", "manifest-sha512.txt", cwd=bag)
    run("sha512sum", "--strict", "-c", "tagmanifest-sha512.txt", cwd=bag)
    run(
        "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", tmp_path / "pub.pem", "-rawin",
        "-in", bag / "tagmanifest-sha512.txt", "-sigfile", bag / SIG,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["100%.txt", "line\nbreak.txt", "carriage\rreturn.txt"])
def test_names_the_validators_cannot_read_back_are_refused(signer: Signer, name: str) -> None:
    payload = [*payload_files(), PayloadFile.from_bytes(f"attachments/file/{name}", b"x")]
    with pytest.raises(BundleError, match="invalid_payload_path"):
        build(make_spec(signer, payload=payload))


def test_manifests_from_other_tools_are_read_per_rfc_8493() -> None:
    digest = "ab" * 64
    line = f"{digest.upper()}  data/100%25 line%0Abreak%0dreturn.txt\n".encode()
    assert parse_manifest(line, "manifest-sha512.txt") == {"data/100% line\nbreak\rreturn.txt": digest}
    with pytest.raises(BundleError, match="manifest_invalid"):
        parse_manifest(f"{digest}  data/100%.txt\n".encode(), "manifest-sha512.txt")
    with pytest.raises(BundleError, match="manifest_invalid"):
        parse_manifest(f"{digest[:-1]}  data/a.txt\n".encode(), "manifest-sha512.txt")


# --- layout and reproducibility ---------------------------------------------------------------------------


def test_layout_headers_and_tag_files(bundle: bytes, signer: Signer) -> None:
    members = read_members(bundle)
    names = [member.name for member, _ in members]
    assert names == sorted(names, key=tree_order)
    assert names[:4] == [NAME, f"{NAME}/bag-info.txt", f"{NAME}/bagit.txt", f"{NAME}/data"]
    assert names[-5:] == [
        f"{NAME}/manifest-sha512.txt", f"{NAME}/signatures", f"{NAME}/{DSSE}", f"{NAME}/{SIG}",
        f"{NAME}/tagmanifest-sha512.txt",
    ]  # fmt: skip
    for member, _ in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == int(CREATED_AT.timestamp())
        assert member.mode == (0o755 if member.isdir() else 0o644)
    files = {member.name.removeprefix(f"{NAME}/"): content for member, content in members}
    assert files["bagit.txt"] == b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    assert (
        files["bag-info.txt"]
        .decode()
        .startswith(
            f"Bagging-Date: 2024-05-01\nPayload-Oxum: {sum(item.size for item in payload_files())}.7\n"
            "External-Identifier: 42\n"
        )
    )
    assert files["tagmanifest-sha512.txt"].decode().split()[1::2] == [
        "bag-info.txt", "bagit.txt", "export.json", "manifest-sha512.txt",
    ]  # fmt: skip
    assert len(files[SIG]) == 64
    document = json.loads(files["export.json"])
    assert document["signing"]["key_id"] == signer.key_id
    assert f"data/{LONG_NAME}" in document["export"]["attachments"]
    statement = json.loads(dsse_verify(json.loads(files[DSSE]), {signer.key_id: signer.public_key})[0])
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert {subject["name"]: subject["digest"]["sha256"] for subject in statement["subject"]} == {
        "data/narrative.md": hashlib.sha256(files["data/narrative.md"]).hexdigest(),
        "tagmanifest-sha512.txt": hashlib.sha256(files["tagmanifest-sha512.txt"]).hexdigest(),
    }


def test_result_describes_the_archive(signer: Signer) -> None:
    out = io.BytesIO()
    result = build_bundle(make_spec(signer), out)
    archive = out.getvalue()
    assert (result.sha256, result.size) == (hashlib.sha256(archive).hexdigest(), len(archive))
    assert result.manifest["data/attachments/file/plate reader.bin"] == hashlib.sha512(BIG).hexdigest()
    assert result.key_id == signer.key_id
    report = verify_bundle(io.BytesIO(archive), keys_for(signer))
    assert report.ok, report.problems
    assert (report.archive_sha256, report.bag_name, report.key_id) == (result.sha256, NAME, signer.key_id)


def test_same_spec_gives_identical_bytes_whatever_the_threads_and_input_order(signer: Signer) -> None:
    first = build(make_spec(signer), threads=1)
    again = build(make_spec(signer, payload=payload_files()[::-1]), threads=2)
    assert first == again
    assert build(make_spec(signer, created_at=CREATED_AT.astimezone(timezone(timedelta(hours=2))))) == first
    assert build(make_spec(signer, created_at=CREATED_AT + timedelta(seconds=1))) != first


def test_bundle_bytes_are_pinned_for_a_fixed_key(signer: Signer) -> None:
    """Ed25519 signatures are deterministic, so a fixed key makes the whole archive a known value. If this
    digest changes, bundles built by an earlier release no longer replay to the same bytes: a change to the
    format, the tar writer or the compression library must be deliberate and documented."""
    fixed = Signer.from_private_key(private_key_from_bytes(bytes(range(32))))
    archive = build(make_spec(fixed))
    assert build(make_spec(fixed), threads=3) == archive
    assert hashlib.sha256(archive).hexdigest() == "bf10095457b08128a3362a66e5de23a1e49ca9b7f295c6bf6b954d742c0cd0d4"


def test_zstd_frame_carries_no_checksum_size_or_dictionary(bundle: bytes) -> None:
    frame = zstandard.get_frame_parameters(bundle)
    assert (frame.has_checksum, frame.dict_id, frame.content_size) == (False, 0, zstandard.CONTENTSIZE_UNKNOWN)


def test_gzip_is_reproducible_and_has_no_timestamp_or_name(signer: Signer) -> None:
    archive = build(make_spec(signer, compression="gzip"))
    assert archive == build(make_spec(signer, compression="gzip"))
    assert archive[3] == 0  # FLG: no FNAME, FCOMMENT, FEXTRA
    assert archive[4:8] == b"\0\0\0\0"  # MTIME
    assert verify_bundle(io.BytesIO(archive), keys_for(signer)).ok
    assert gzip.decompress(archive)[: len(NAME)] == NAME.encode()


# --- streaming ----------------------------------------------------------------------------------------------


class CountingStream(io.RawIOBase):
    """An endless-looking file that never exists in memory, recording how it is read."""

    def __init__(self, size: int, log: list[str]) -> None:
        self._left = size
        self._log = log
        log.append("open")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        self._log.append(f"read {len(buffer)}")
        count = min(len(buffer), self._left)
        buffer[:count] = b"\x5a" * count
        self._left -= count
        return count

    def close(self) -> None:
        if not self.closed:
            self._log.append("close")
        super().close()


def test_each_payload_file_is_read_once_in_large_chunks_with_flat_memory(signer: Signer) -> None:
    size = 96 << 20
    log: list[str] = []
    big = PayloadFile("attachments/file/huge.bin", size, lambda: CountingStream(size, log))  # type: ignore[arg-type, return-value]
    spec = make_spec(signer, payload=[payload_files()[0], big])
    tracemalloc.start()
    try:
        result = build_bundle(spec, io.BytesIO(), threads=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert log[0] == "open" and log[-1] == "close" and log.count("open") == 1
    assert all(int(entry.split()[1]) >= 1 << 20 for entry in log if entry.startswith("read"))
    assert peak < 24 << 20, f"Python allocations peaked at {peak} bytes for a {size}-byte file"
    assert result.manifest["data/attachments/file/huge.bin"] == hashlib.sha512(b"\x5a" * size).hexdigest()


def test_a_file_that_changed_size_is_refused(signer: Signer) -> None:
    lying = PayloadFile("events.ndjson", 10, lambda: io.BytesIO(b"short"))
    with pytest.raises(BundleError) as error:
        build(make_spec(signer, payload=[payload_files()[0], lying]))
    assert (error.value.code, error.value.path) == ("payload_size_mismatch", f"{NAME}/data/events.ndjson")
    growing = PayloadFile("events.ndjson", 2, lambda: io.BytesIO(b"longer"))
    with pytest.raises(BundleError, match="payload_size_mismatch"):
        build(make_spec(signer, payload=[payload_files()[0], growing]))


# --- tampering ----------------------------------------------------------------------------------------------

TAMPER = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@TAMPER
@given(
    path=st.sampled_from(["data/narrative.md", "data/events.ndjson", "data/attachments/file/plate reader.bin"]),
    position=st.integers(min_value=0),
    mask=st.integers(min_value=1, max_value=255),
)
def test_a_flipped_payload_byte_is_reported_on_that_file(
    bundle: bytes, signer: Signer, path: str, position: int, mask: int
) -> None:
    problems = problems_of(with_content(bundle, path, flip(position, mask)), signer)
    assert ("digest_mismatch", path) in problems


@TAMPER
@given(
    path=st.sampled_from(["bag-info.txt", "bagit.txt", "export.json", "manifest-sha512.txt", SIG, DSSE]),
    position=st.integers(min_value=0),
    mask=st.integers(min_value=1, max_value=255),
)
def test_a_flipped_tag_or_signature_byte_is_reported_on_that_file(
    bundle: bytes, signer: Signer, path: str, position: int, mask: int
) -> None:
    problems = problems_of(with_content(bundle, path, flip(position, mask)), signer)
    assert problems, "tampering went unnoticed"
    assert path in {problem_path for _, problem_path in problems}, problems


def test_a_flipped_tag_manifest_byte_breaks_the_signature(bundle: bytes, signer: Signer) -> None:
    problems = problems_of(with_content(bundle, "tagmanifest-sha512.txt", flip(3, 1)), signer)
    assert ("signature_invalid", SIG) in problems
    assert ("attestation_subject_mismatch", DSSE) in problems


def test_reformatted_envelope_is_refused(bundle: bytes, signer: Signer) -> None:
    problems = problems_of(with_content(bundle, DSSE, lambda text: json.dumps(json.loads(text)).encode()), signer)
    assert problems == {("attestation_invalid", DSSE)}


def test_consistently_rehashed_edit_is_caught_by_the_signature(bundle: bytes, signer: Signer) -> None:
    """An attacker who edits a file and fixes every manifest still cannot re-sign."""

    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        files = {member.name.removeprefix(f"{NAME}/"): index for index, (member, _) in enumerate(members)}

        def content(path: str) -> bytes:
            return members[files[path]][1]

        def put(path: str, data: bytes) -> None:
            members[files[path]] = (members[files[path]][0], data)

        def rehash(manifest: str, path: str) -> None:
            lines = [
                (f"{hashlib.sha512(content(path)).hexdigest()}  {path}" if line.endswith(f"  {path}") else line)
                for line in content(manifest).decode().splitlines()
            ]
            put(manifest, ("\n".join(lines) + "\n").encode())

        put("data/events.ndjson", b'{"sequence":1}\n{"sequence":9}\n')
        rehash("manifest-sha512.txt", "data/events.ndjson")
        document = json.loads(content("export.json"))
        for entry in document["files"]:
            if entry["path"] == "data/events.ndjson":
                entry["sha512"] = hashlib.sha512(content("data/events.ndjson")).hexdigest()
        put("export.json", (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())
        rehash("tagmanifest-sha512.txt", "manifest-sha512.txt")
        rehash("tagmanifest-sha512.txt", "export.json")

    problems = problems_of(repack(bundle, edit), signer)
    assert ("signature_invalid", SIG) in problems
    assert ("attestation_subject_mismatch", DSSE) in problems
    assert not any(code == "digest_mismatch" for code, _ in problems)


def test_unlisted_and_missing_payload_files(bundle: bytes, signer: Signer) -> None:
    def add_and_remove(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        extra = tarfile.TarInfo(f"{NAME}/data/smuggled.txt")
        members.append((extra, b"not in any manifest"))
        members[:] = [(member, content) for member, content in members if not member.name.endswith("approvals.json")]

    problems = problems_of(repack(bundle, add_and_remove), signer)
    assert ("unlisted_payload", "data/smuggled.txt") in problems
    assert ("missing_payload", "data/approvals.json") in problems
    assert ("payload_oxum_mismatch", "bag-info.txt") in problems


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        (f"{NAME}/data/link", tarfile.SYMTYPE),
        (f"{NAME}/data/hard", tarfile.LNKTYPE),
        (f"{NAME}/data/dev", tarfile.CHRTYPE),
        (f"{NAME}/../escape.txt", tarfile.REGTYPE),
        ("/etc/evil", tarfile.REGTYPE),
        ("other-bag/x.txt", tarfile.REGTYPE),
    ],
)
def test_unsafe_members_are_reported_and_never_extracted(
    bundle: bytes, signer: Signer, tmp_path: Path, name: str, kind: bytes
) -> None:
    def add(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        member = tarfile.TarInfo(name)
        member.type = kind
        member.linkname = "/etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
        members.append((member, b"x" if kind == tarfile.REGTYPE else b""))

    archive = repack(bundle, add)
    assert "unsafe_member" in {code for code, _ in problems_of(archive, signer)}
    with pytest.raises(BundleError, match="unsafe_member"):
        extract_bundle(io.BytesIO(archive), tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "out" / NAME / "data" / "link").exists()


def test_keys_are_looked_up_by_key_id(bundle: bytes, signer: Signer) -> None:
    stranger = generate_signer()
    assert ("unknown_signing_key", SIG) in problems_of(bundle, stranger)
    impostor = {signer.key_id: public_key_pem(stranger.public_key)}
    problems = {(p.code, p.path) for p in verify_bundle(io.BytesIO(bundle), impostor).problems}
    assert problems == {("signature_invalid", SIG), ("attestation_signature_invalid", DSSE)}


def test_unreadable_archives_are_reported(signer: Signer, bundle: bytes) -> None:
    for data in (b"", b"not an archive", bundle[: len(bundle) // 2]):
        report = verify_bundle(io.BytesIO(data), keys_for(signer))
        assert [problem.code for problem in report.problems] == ["archive_unreadable"], report.problems


def test_verify_reads_a_path(bundle: bytes, signer: Signer, tmp_path: Path) -> None:
    (tmp_path / "b.tar.zst").write_bytes(bundle)
    assert verify_bundle(tmp_path / "b.tar.zst", keys_for(signer)).ok


# --- extraction ---------------------------------------------------------------------------------------------


def test_extract_writes_the_bag_with_fixed_modes(bundle: bytes, tmp_path: Path) -> None:
    bag = extract_bundle(io.BytesIO(bundle), tmp_path / "out")
    assert bag == tmp_path / "out" / NAME
    assert (bag / "data/attachments/file/plate reader.bin").read_bytes() == BIG
    assert (bag / "data/narrative.md").stat().st_mode & 0o777 == 0o644
    with pytest.raises(BundleError, match="destination_not_empty"):
        extract_bundle(io.BytesIO(bundle), tmp_path / "out")


# --- spec validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"name": "../x"}, "invalid_bag_name"),
        ({"created_at": datetime(2024, 5, 1)}, "invalid_created_at"),
        ({"compression": "xz"}, "invalid_compression"),
        ({"bag_info": [("Payload-Oxum", "1.1")]}, "invalid_bag_info"),
        ({"bag_info": [("Bad:Label", "x")]}, "invalid_bag_info"),
        ({"bag_info": [("Note", "two\nlines")]}, "invalid_bag_info"),
        ({"payload": [PayloadFile.from_bytes("events.ndjson", b"")]}, "invalid_payload"),
        ({"export_metadata": lambda digests: {"id": 1}}, "export_document_invalid"),
        ({"export_metadata": lambda digests: {**export_metadata(digests), "files": []}}, "invalid_export_metadata"),
        ({"export_metadata": lambda digests: {**export_metadata(digests), "x": {1, 2}}}, "invalid_export_metadata"),
    ],
)
def test_invalid_specs_are_refused(signer: Signer, changes: dict[str, object], code: str) -> None:
    with pytest.raises(BundleError) as error:
        build(make_spec(signer, **changes))
    assert error.value.code == code


@pytest.mark.parametrize(
    "extra",
    ["Narrative.md", "attachments/file/plate reader.bin/x", "attachments"],
)
def test_colliding_payload_paths_are_refused(signer: Signer, extra: str) -> None:
    payload = [*payload_files(), PayloadFile.from_bytes(extra, b"")]
    with pytest.raises(BundleError, match="duplicate_payload_path"):
        build(make_spec(signer, payload=payload))


# --- paths (property based) ---------------------------------------------------------------------------------

components = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), min_size=1, max_size=12
)


@given(st.lists(components, min_size=1, max_size=4).map("/".join))
def test_accepted_payload_paths_cannot_escape_or_confuse(path: str) -> None:
    try:
        validate_payload_path(path)
    except BundleError as error:
        assert error.code == "invalid_payload_path"
        return
    parts = path.split("/")
    assert not path.startswith("/") and "\\" not in path and "\x00" not in path
    assert not {"", ".", ".."} & set(parts)
    assert path == path.strip()


@given(st.sampled_from(["..", ".", "", "/abs", "a\\b", "a\x00b", " lead", "trail ", "a//b", "a/../b", "x/."]))
def test_known_bad_payload_paths_are_rejected(path: str) -> None:
    with pytest.raises(BundleError, match="invalid_payload_path"):
        validate_payload_path(path)


@given(st.text())
def test_manifest_path_encoding_round_trips_and_hides_line_breaks(path: str) -> None:
    encoded = encode_manifest_path(path)
    assert decode_manifest_path(encoded) == path
    assert "\n" not in encoded and "\r" not in encoded
    if not set("%\r\n") & set(path):
        assert encoded == path


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(components, min_size=1, max_size=3).map("/".join), min_size=1, max_size=4, unique=True))
def test_any_valid_payload_path_survives_build_and_verify(signer: Signer, paths: list[str]) -> None:
    payload = [payload_files()[0]] + [PayloadFile.from_bytes(f"attachments/{path}", path.encode()) for path in paths]
    try:
        archive = build(make_spec(signer, payload=payload))
    except BundleError as error:
        assert error.code in {"invalid_payload_path", "duplicate_payload_path"}
        return
    report = verify_bundle(io.BytesIO(archive), keys_for(signer))
    assert report.ok, report.problems


# --- keys and DSSE ------------------------------------------------------------------------------------------


def test_key_id_and_serialisation_round_trips(signer: Signer) -> None:
    assert len(signer.key_id) == 16 and int(signer.key_id, 16) >= 0
    assert key_id_for(load_public_key(public_key_pem(signer.public_key))) == signer.key_id
    raw = private_key_to_bytes(signer.private_key)
    assert len(raw) == 32
    assert Signer.from_private_key(private_key_from_bytes(raw)).key_id == signer.key_id
    pem = private_key_to_pem(signer.private_key, password=b"s3cret")
    assert key_id_for(private_key_from_pem(pem, password=b"s3cret").public_key()) == signer.key_id
    with pytest.raises(BundleError, match="invalid_private_key"):
        private_key_from_pem(pem, password=b"wrong")
    with pytest.raises(BundleError, match="invalid_public_key"):
        load_public_key("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_dsse_pae_matches_the_specification_example() -> None:
    assert dsse_pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_dsse_round_trip_and_strict_base64(signer: Signer) -> None:
    envelope = dsse_sign("application/vnd.in-toto+json", b'{"a":1}', signer)
    assert dsse_verify(envelope, {signer.key_id: signer.public_key}) == (b'{"a":1}', (signer.key_id,))
    sig = envelope["signatures"][0]["sig"]
    loose = {**envelope, "signatures": [{"keyid": signer.key_id, "sig": sig[:-3] + "B=="}]}  # same bytes, other text
    with pytest.raises(BundleError, match="attestation_invalid|attestation_signature_invalid"):
        dsse_verify(loose, {signer.key_id: signer.public_key})
    with pytest.raises(BundleError, match="attestation_signature_invalid"):
        dsse_verify({**envelope, "payloadType": "text/plain"}, {signer.key_id: signer.public_key})


def test_data_after_the_archive_end_is_reported(bundle: bytes, signer: Signer) -> None:
    tar_bytes = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bundle)).read()
    archive = zstandard.ZstdCompressor().compress(tar_bytes + b"appended later")
    assert problems_of(archive, signer) == {("archive_trailing_data", None)}


def test_oversized_extended_headers_are_refused(signer: Signer, tmp_path: Path) -> None:
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        member = tarfile.TarInfo(f"{NAME}/bagit.txt")
        member.pax_headers = {"comment": "x" * (2 << 20)}
        tar.addfile(member, io.BytesIO())
    archive = zstandard.ZstdCompressor().compress(tar_bytes.getvalue())
    report = verify_bundle(io.BytesIO(archive), keys_for(signer))
    assert [(problem.code, "extended header" in problem.message) for problem in report.problems] == [
        ("archive_unreadable", True)
    ]
    with pytest.raises(BundleError, match="archive_unreadable"):
        extract_bundle(io.BytesIO(archive), tmp_path / "out")


def test_a_payload_file_with_a_recorded_sha256_is_checked_in_the_same_pass(signer: Signer) -> None:
    data = b"stored evidence\n"
    good = PayloadFile(
        path="attachments/file/1-a.csv", size=len(data), open=lambda: io.BytesIO(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip
    build(make_spec(signer, payload=[*payload_files(), good]))
    bad = PayloadFile(path=good.path, size=good.size, open=good.open, sha256="0" * 64)
    with pytest.raises(BundleError, match="payload_digest_mismatch"):
        build(make_spec(signer, payload=[*payload_files(), bad]))
