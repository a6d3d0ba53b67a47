"""Human labels and the page filters (docs/pages.md)."""

from decimal import Decimal

import pytest
from django.template import engines

from config.labels import label, labels, raw_codes
from config.templatetags import duration, hours


def render(source: str, **context) -> str:
    return engines["django"].from_string(source).render(context)


def test_every_status_action_and_role_has_a_label_that_is_not_its_code():
    from approvals.choices import HistoryAction, LadderStatus, StageStatus
    from exports.choices import ExportStatus
    from governance.choices import RoleKey

    for choices in (ExportStatus, StageStatus, LadderStatus, HistoryAction, RoleKey):
        for value in choices.values:
            assert label(value) != value, value
    assert label("awaiting_approval") == "Awaiting approval"
    assert label("in_progress") == "In progress"
    assert label("qa_approver") == "QA approver"
    assert label("reject") == "Rejected"
    assert label("narrative_export.approval.stage_completed") == "Stage signed"


def test_an_unlabelled_code_still_reads_as_words():
    assert label("storage_unavailable") == "Storage unavailable"
    assert label("governance.sample.recorded") == "Recorded"
    assert label(None) == "" and label("") == ""


def test_the_raw_codes_the_sweep_looks_for_are_the_codes_shown_differently():
    codes = raw_codes()
    assert {"awaiting_approval", "in_progress", "approved", "pending", "qa_approver"} <= codes
    assert all(labels()[code] != code for code in codes)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (24, "24 h"),
        (24.0, "24 h"),
        ("48", "48 h"),
        (1.5, "1.5 h"),
        (Decimal("0.25"), "0.3 h"),
        (None, ""),
        ("n/a", "n/a"),
    ],
)
def test_hours_read_one_way(value, shown):
    assert hours(value) == shown


def test_durations_in_words():
    assert duration(45) == "45 seconds"
    assert duration(3 * 3600 + 60) == "3 hours 1 minute"
    assert duration(12 * 86400 + 12 * 3600 + 366) == "12 days 12 hours"
    assert duration(None) == ""


def test_a_payload_reads_as_labelled_values_not_json():
    html = render(
        "{% key_values payload %}",
        payload={"stage_id": 4, "status": "in_progress", "ok": True, "tags": ["a", "b"], "who": {"role": "pi"}},
    )
    assert "{" not in html and "&quot;" not in html
    assert "<dt>Stage id</dt>" in html and "<dd>4</dd>" in html
    assert "<dd>In progress</dd>" in html and "<dd>yes</dd>" in html and "<dd>a, b</dd>" in html
    assert "<dt>Role</dt>" in html and "<dd>Principal investigator</dd>" in html


def test_payload_text_stays_inert():
    html = render("{% key_values payload %}", payload={"note": "<script>x</script>\u202e"})
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;U+202E&gt;" in html


def test_when_reads_iso_text_and_naive_times_as_utc():
    from datetime import datetime

    assert "2026-01-15 09:30 UTC" in render("{{ moment|when }}", moment="2026-01-15T09:30:00Z")
    assert "2026-01-15 09:30 UTC" in render("{{ moment|when }}", moment=datetime(2026, 1, 15, 9, 30))
    assert render("{{ moment|when }}", moment=None) == "" and render("{{ moment|when }}", moment="soon") == ""


def test_lockout_times_follow_the_active_zone():
    from datetime import UTC, datetime, timedelta

    from django.utils import timezone

    from config.humanize import until_in_words

    now = datetime(2026, 12, 1, 13, 53, tzinfo=UTC)
    assert until_in_words(now + timedelta(minutes=12), now=now) == "14:05 UTC (in 12 minutes)"
    with timezone.override("Europe/Berlin"):
        assert until_in_words(now + timedelta(minutes=12), now=now) == "15:05 CET (in 12 minutes)"
        assert until_in_words(now + timedelta(hours=11), now=now) == "2026-12-02 01:53 CET (in 11 hours)"


def test_a_timeline_shows_server_event_types_labelled_and_the_labs_own_as_written():
    from config.templatetags import event_label

    assert event_label("governance.escalation.recorded") == "Escalation outcome recorded"
    assert event_label("step.recorded") == "step.recorded"
    assert event_label(None) == ""
