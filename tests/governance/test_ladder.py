from datetime import UTC, datetime, timedelta

import pytest

from governance.ladder import ladder_simulate

DOC = {
    "stages": [
        {"name": "Review", "required_role": "reviewer", "sla_hours": 24, "meaning": "Reviewed"},
        {"name": "QA", "required_role": "qa_approver", "sla_hours": 48, "meaning": "Approved"},
        {"name": "Compliance", "required_role": "compliance", "sla_hours": 1.5, "meaning": "Compliant"},
    ],
    "sla_defaults": {"sla_hours": 48, "escalate_after_hours": 12},
}
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_without_load_stages_follow_each_other_at_their_sla():
    stages = ladder_simulate(DOC, start_at=START)
    assert [s.projected_start for s in stages] == [START, START + timedelta(hours=24), START + timedelta(hours=72)]
    assert stages[-1].projected_due == START + timedelta(hours=73.5)
    assert stages[0].escalate_at == START + timedelta(hours=36)
    assert [s.position for s in stages] == [1, 2, 3]


def test_open_load_delays_the_start_of_the_stages_of_that_role():
    stages = ladder_simulate(DOC, start_at=START, open_load={"qa_approver": 3, "reviewer": 0}, hours_per_open_item=2)
    qa = stages[1]
    assert (qa.open_load, qa.queue_delay_hours) == (3, 6)
    assert qa.activated_at == START + timedelta(hours=24)
    assert qa.projected_start == START + timedelta(hours=30)
    assert qa.projected_due == START + timedelta(hours=78)
    assert stages[2].activated_at == qa.projected_due


def test_as_dict_is_json_ready():
    row = ladder_simulate(DOC, start_at=START)[0].as_dict()
    assert row["projected_start"] == "2026-01-05T09:00:00Z"
    assert row["required_role"] == "reviewer" and row["sla_hours"] == 24.0


def test_bad_arguments():
    with pytest.raises(ValueError):
        ladder_simulate(DOC, start_at=datetime(2026, 1, 5))  # noqa: DTZ001
    with pytest.raises(ValueError):
        ladder_simulate(DOC, start_at=START, hours_per_open_item=-1)
    assert ladder_simulate({"stages": []}, start_at=START) == []
