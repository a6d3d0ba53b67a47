"""The reports page's feed card: real figures, the run button (staff and operators) and the chunk download."""

import json

import pytest
from django.test import Client

from governance.feed_registry import feed_event_types
from governance.models import AuditEvent, FeedCursor

pytestmark = pytest.mark.django_db
REPORTS, RUN, CHUNK = "/governance/reports", "/governance/reports/feed/run", "/governance/reports/feed/latest.ndjson"


@pytest.fixture(autouse=True)
def feed_file(settings, tmp_path):
    settings.DOSSIER_FEED_FILE_PATH = str(tmp_path / "feed.ndjson")
    return tmp_path / "feed.ndjson"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def feed_sequences() -> list[int]:
    return list(AuditEvent.objects.filter(action__in=list(feed_event_types())).values_list("sequence", flat=True))


def test_operator_runs_the_feed_and_the_card_shows_it(known, crew, member, feed_file):
    operator = member("operator", username="opal")
    client = logged_in(operator)
    before = client.get(REPORTS).content.decode()
    expected = feed_sequences()
    assert expected and f'data-feed="lag">{len(expected)} events' in before and "never" in before
    response = client.post(RUN, follow=True)
    page = response.content.decode()
    assert "Feed run succeeded" in page
    assert f'data-feed="cursor">{expected[-1]}<' in page and f'data-feed="rows">{len(expected)}<' in page
    assert 'data-feed="lag">0 events' in page and 'data-feed="outcome">Succeeded' in page
    assert [json.loads(line)["sequence"] for line in feed_file.read_text().splitlines()] == expected
    assert FeedCursor.objects.get(name="governance-feed").cursor == expected[-1]
    assert "Download the latest chunk" not in page  # staff only


def test_the_button_is_for_operators_and_the_download_for_staff(known, crew, member):
    scientist = logged_in(member("scientist", username="sid"))
    assert "Run the feed now" not in scientist.get(REPORTS).content.decode()
    assert scientist.post(RUN).status_code == 403
    assert scientist.get(RUN).status_code == 405
    admin = crew.admin
    admin.is_staff = True
    admin.save()
    curator = logged_in(admin)  # staff, but scoped to their teams: the chunk spans every team
    admin.is_superuser = True
    admin.save()
    staff = logged_in(admin)
    assert staff.get(CHUNK).status_code == 404  # nothing delivered yet
    staff.post(RUN)
    admin.is_superuser = False
    admin.save()
    assert curator.get(CHUNK).status_code == 403
    assert "Download the latest chunk" not in curator.get(REPORTS).content.decode()
    admin.is_superuser = True
    admin.save()
    assert scientist.get(CHUNK).status_code == 403
    response = staff.get(CHUNK)
    assert response["Content-Type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [row["sequence"] for row in rows] == feed_sequences()
    assert "Download the latest chunk" in staff.get(REPORTS).content.decode()
