"""The queue state value: the shapes it stores and what counts as the same state."""

from datetime import UTC, datetime

from exports.queue_state import QueueState

STAGE = {"id": 5, "index": 0, "name": "Review", "required_role": "reviewer"}


def test_the_guardrail_state_keeps_its_stored_shape():
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    state = QueueState.for_guardrail(
        status="awaiting_approval", pending_stage=STAGE, forecast=at, iteration=2, attempts=1, now=at
    )
    assert state.as_json() == {
        "status": "awaiting_approval",
        "pending_stage": STAGE,
        "forecast": "2026-01-02T03:04:05Z",
        "updated_at": "2026-01-02T03:04:05Z",
        "attempts": 1,
        "guardrail_status": "awaiting_approval",
        "iteration": 2,
    }
    assert QueueState.from_json(state.as_json()) == state


def test_a_worker_state_carries_the_pending_stage_and_forecast_but_not_the_guardrail_fields():
    guardrail = QueueState.for_guardrail(
        status="awaiting_approval", pending_stage=STAGE, forecast=None, iteration=1, attempts=0
    )
    queued = guardrail.advanced("queued", attempts=3).as_json()
    assert queued["status"] == "queued" and queued["pending_stage"] == STAGE and queued["attempts"] == 3
    assert "guardrail_status" not in queued and "iteration" not in queued
    failed = QueueState.from_json(queued).advanced("failed", attempts=3, error_code="storage_full").as_json()
    assert failed["error_code"] == "storage_full"


def test_a_worker_blocked_by_the_guardrail_is_the_same_state_as_the_guardrails_own():
    guardrail = QueueState.for_guardrail(status="rejected", pending_stage=STAGE, forecast=None, iteration=1)
    blocked = QueueState(status="queued").advanced(
        "blocked",
        attempts=1,
        blocked_by="gate_blocked",
        reason="approvals: rejected",
        guardrail_status="rejected",
        pending_stage=STAGE,
        iteration=1,
    )
    assert blocked.status == "blocked" and blocked.guardrail == "rejected"
    assert blocked.key == guardrail.key == ("rejected", 5, 1)
    assert QueueState.from_json(blocked.as_json()).key == guardrail.key
    moved = QueueState.for_guardrail(status="awaiting_approval", pending_stage=STAGE, forecast=None, iteration=2)
    assert moved.key != guardrail.key
    assert QueueState.from_json({}).key == (None, None, None)
