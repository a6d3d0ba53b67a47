import hashlib

import pytest
from django.core.files.storage import storages
from django.test.client import encode_multipart
from django.utils.dateparse import parse_datetime

from exports.models import Evidence

pytestmark = pytest.mark.django_db


def _upload(client, execution, name: str, content: bytes, **extra):
    boundary = "BoUnDaRy"
    body = encode_multipart(boundary, {"title": "Plate", **extra})
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: text/csv\r\n\r\n"
    ).encode()
    closing = f"--{boundary}--\r\n".encode()
    body = body[: -len(closing)] + part + content + b"\r\n" + closing
    return client.generic(
        "POST",
        f"/api/experiment-console/sessions/{execution.pk}/files",
        body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def _stored_files():
    storage = storages["artifacts"]
    found = []

    def walk(path):
        dirs, files = storage.listdir(path) if storage.exists(path) else ([], [])
        found.extend(f"{path}/{name}" for name in files)
        for directory in dirs:
            walk(f"{path}/{directory}" if path else directory)

    walk("")
    return found


def test_upload_is_hashed_and_stored_under_a_server_name(client_for, scientist, execution):
    content = b"well,od\nA1,0.5\n" * 1000
    response = _upload(client_for(scientist), execution, "plate.csv", content)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["size"] == len(content)
    assert body["original_filename"] == "plate.csv"
    evidence = Evidence.objects.get(pk=body["id"])
    # The retention terms it took are in the answer (docs/records-lifecycle.md, "Where the terms come from").
    assert evidence.retain_until is not None and parse_datetime(body["retain_until"]) == evidence.retain_until
    assert body["retention_mode"] == evidence.retention_mode == "governance"
    assert evidence.storage_path.startswith(f"alpha/{execution.pk}/evidence/")
    assert "plate" not in evidence.storage_path
    with storages["artifacts"].open(evidence.storage_path) as handle:
        assert handle.read() == content


def test_two_uploads_with_the_same_name_do_not_overwrite(client_for, scientist, execution):
    client = client_for(scientist)
    first = _upload(client, execution, "same.csv", b"first").json()
    second = _upload(client, execution, "same.csv", b"second").json()
    paths = set(Evidence.objects.filter(pk__in=[first["id"], second["id"]]).values_list("storage_path", flat=True))
    assert len(paths) == 2


def test_oversized_upload_is_413_and_stores_nothing(client_for, scientist, execution, settings):
    settings.DOSSIER_MAX_UPLOAD_BYTES = 1024
    response = _upload(client_for(scientist), execution, "big.bin", b"x" * 4096)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Evidence.objects.exists()
    assert _stored_files() == []


def test_oversized_upload_with_understated_content_length_is_still_refused(client_for, scientist, execution, settings):
    settings.DOSSIER_MAX_UPLOAD_BYTES = 200_000
    response = _upload(client_for(scientist), execution, "big.bin", b"x" * 300_000)
    assert response.status_code == 413
    assert not Evidence.objects.exists()


@pytest.mark.parametrize("name", ["../../etc/passwd", "..\\..\\boot.ini", "a/b.csv", ".hidden", "bad\x07name"])
def test_path_like_file_names_are_refused_and_store_nothing(client_for, scientist, execution, name):
    response = _upload(client_for(scientist), execution, name, b"data")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_filename"
    assert not Evidence.objects.exists()
    assert _stored_files() == []


def test_missing_file_field_is_400(client_for, scientist, execution):
    response = client_for(scientist).post(
        f"/api/experiment-console/sessions/{execution.pk}/files", {"title": "x"}, format="multipart"
    )
    assert response.status_code == 400
    assert "file" in response.json()["error"]["details"]["fields"]


def test_json_body_to_upload_endpoint_is_415(client_for, scientist, execution):
    response = client_for(scientist).post(
        f"/api/experiment-console/sessions/{execution.pk}/files", {"title": "x"}, format="json"
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_reviewer_may_not_upload(client_for, member, execution):
    reviewer = member("reviewer", username="rev")
    response = _upload(client_for(reviewer), execution, "x.csv", b"1")
    assert response.status_code == 403
