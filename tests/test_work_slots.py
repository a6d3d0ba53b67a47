"""Work slots (config/middleware.py, docs/deployment.md "Under load"): at most DOSSIER_WEB_WORK_SLOTS requests of a
process run application code at once; others wait for one, and are answered 503 `busy` after waiting too long; an
upload gives its slot up while its body arrives."""

import json
import threading

import pytest
from django.db import transaction
from django.http import HttpResponse

from config import middleware
from config.middleware import WorkSlotMiddleware, work_slot_released
from tests.exports.test_api_uploads import _upload


def _slot_held() -> bool:
    slot = middleware._current_slot.get()
    return slot is not None and slot.held


def test_a_request_waits_for_the_slot_and_one_that_waits_too_long_is_told_busy(settings, rf):
    settings.DOSSIER_WEB_WORK_SLOTS = 1
    settings.DOSSIER_WEB_WORK_SLOT_WAIT_SECONDS = 0.3
    working, finish = threading.Event(), threading.Event()

    def view(request):
        if request.path == "/api/slow":
            working.set()
            finish.wait(10)
        return HttpResponse("done")

    stack = WorkSlotMiddleware(view)
    answers = {}
    first = threading.Thread(target=lambda: answers.setdefault("slow", stack(rf.get("/api/slow"))))
    first.start()
    assert working.wait(10)

    refused = stack(rf.get("/api/quick"))
    assert refused.status_code == 503 and refused["Retry-After"] == "1"
    assert json.loads(refused.content)["error"] == {
        "code": "busy",
        "message": "The server is busy: nothing was done. Try again in a moment.",
        "details": {"retry_after_seconds": 1},
    }

    waiting = threading.Thread(target=lambda: answers.setdefault("waited", stack(rf.get("/api/waited"))))
    settings.DOSSIER_WEB_WORK_SLOT_WAIT_SECONDS = 10
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive()  # it waits for the slot the slow request holds
    finish.set()
    first.join(10)
    waiting.join(10)
    assert answers["slow"].status_code == 200 and answers["waited"].status_code == 200


def test_without_slots_configured_requests_run_side_by_side(settings, rf):
    settings.DOSSIER_WEB_WORK_SLOTS = 0
    both = threading.Barrier(2, timeout=5)

    def view(request):
        both.wait()  # breaks (and fails the test) unless the two requests are inside at the same time
        return HttpResponse("done")

    stack = WorkSlotMiddleware(view)
    answers = []
    other = threading.Thread(target=lambda: answers.append(stack(rf.get("/api/a"))))
    other.start()
    answers.append(stack(rf.get("/api/b")))
    other.join(5)
    assert [answer.status_code for answer in answers] == [200, 200]


def test_a_released_slot_lets_another_request_work_and_is_taken_back(settings, rf, transactional_db):
    settings.DOSSIER_WEB_WORK_SLOTS = 1
    seen = {}

    def view(request):
        if request.path == "/api/upload":
            with work_slot_released():
                seen["held while released"] = _slot_held()
                other = threading.Thread(target=lambda: seen.setdefault("other", stack(rf.get("/api/other"))))
                other.start()
                other.join(5)
            seen["held after"] = _slot_held()
            with transaction.atomic(), work_slot_released():
                seen["held in a transaction"] = _slot_held()
        return HttpResponse("done")

    stack = WorkSlotMiddleware(view)
    assert stack(rf.get("/api/upload")).status_code == 200
    assert seen["other"].status_code == 200  # ran while the upload did not hold the slot
    assert seen == {**seen, "held while released": False, "held after": True, "held in a transaction": True}


@pytest.mark.django_db(transaction=True)  # outside a transaction, as a request runs
def test_an_upload_gives_its_slot_up_while_its_body_arrives(settings, client_for, scientist, execution, monkeypatch):
    from exports import uploads

    settings.DOSSIER_WEB_WORK_SLOTS = 1
    held = []
    real_parse = uploads._StrictNameMultiPartParser.parse

    def parse(self):
        held.append(_slot_held())
        return real_parse(self)

    monkeypatch.setattr(uploads._StrictNameMultiPartParser, "parse", parse)
    response = _upload(client_for(scientist), execution, "plate.csv", b"well,od\nA1,0.5\n")
    assert response.status_code == 201, response.json()
    assert held == [False]


def test_a_request_waiting_for_a_hash_slot_lets_another_request_work(settings, rf):
    from django.contrib.auth.hashers import make_password

    from config import passwords

    settings.DOSSIER_WEB_WORK_SLOTS = 1
    settings.DOSSIER_PASSWORD_CHECK_SLOTS = 1
    settings.DOSSIER_PASSWORD_CHECK_NICENESS = 0
    settings.DOSSIER_WEB_WORK_SLOT_WAIT_SECONDS = 3
    hash_slots = passwords._slots()
    hashing = threading.Event()
    assert hash_slots.acquire(timeout=5)  # every hash slot taken, as by a burst of sign-ins
    answers = {}

    def view(request):
        if request.path == "/api/sign":
            hashing.set()  # holding the process's only work slot
            passwords._hash_in_pool(make_password, "a passphrase")
        return HttpResponse("done")

    stack = WorkSlotMiddleware(view)
    signing = threading.Thread(target=lambda: answers.setdefault("sign", stack(rf.get("/api/sign"))))
    signing.start()
    try:
        assert hashing.wait(5)
        # Served only if the signature, waiting for its hash, gave the work slot up (else 503 after 3 s).
        assert stack(rf.get("/api/list")).status_code == 200
        assert signing.is_alive() and "sign" not in answers
    finally:
        hash_slots.release()
    signing.join(10)
    assert answers["sign"].status_code == 200
