"""The viewer's time zone (docs/pages.md): their own choice, else their team's, else UTC; set on the preferences
page; pages show times in it while the API stays in UTC."""

from datetime import UTC, datetime

import pytest
from django.core.cache import cache
from django.test import Client

from governance.models import UserPreference
from governance.selectors.preferences import viewer_time_zone, viewer_time_zone_cache_key
from governance.services.preferences import user_preference_update
from tests.factories import TeamFactory, member_of

pytestmark = pytest.mark.django_db

URL = "/accounts/preferences/"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_zone_is_the_users_choice_else_the_first_teams_else_utc(team, other_team):
    loner = member_of(TeamFactory(slug="zz-loners"), "scientist", username="loner")
    assert viewer_time_zone(user=loner) == "UTC"

    user = member_of(team, "scientist", username="sci")
    member_of(other_team, "scientist", username="sci")
    team.time_zone, other_team.time_zone = "Europe/Berlin", "Asia/Tokyo"
    team.save()
    other_team.save()
    cache.clear()
    assert viewer_time_zone(user=user) == "Europe/Berlin"  # "alpha" before "beta"

    user_preference_update(user=user, time_zone="America/New_York")
    cache.clear()
    assert viewer_time_zone(user=user) == "America/New_York"


def test_a_team_zone_change_reaches_its_members_pages(team, django_capture_on_commit_callbacks):
    user = member_of(team, "scientist", username="sci")
    assert viewer_time_zone(user=user) == "UTC"
    with django_capture_on_commit_callbacks(execute=True):
        team.time_zone = "Australia/Sydney"
        team.save()
    assert cache.get(viewer_time_zone_cache_key(user.pk)) is None
    assert viewer_time_zone(user=user) == "Australia/Sydney"


def test_an_unknown_zone_is_refused(team):
    from config.errors import ValidationFailed

    user = member_of(team, "scientist", username="sci")
    with pytest.raises(ValidationFailed) as info:
        user_preference_update(user=user, time_zone="Mars/Olympus_Mons")
    assert info.value.code == "invalid_time_zone"
    assert not UserPreference.objects.exists()


def test_the_preferences_page_sets_and_clears_the_zone(team, django_capture_on_commit_callbacks):
    team.time_zone = "Europe/Berlin"
    team.save()
    user = member_of(team, "scientist", username="sci")
    client = logged_in(user)

    page = client.get(URL).content.decode()
    assert "My team&#x27;s time zone (Europe/Berlin)" in page and "<strong>Europe/Berlin</strong>" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"time_zone": "Asia/Kolkata"})
    assert response.status_code == 302 and response["Location"] == URL
    assert UserPreference.objects.get(user=user).time_zone == "Asia/Kolkata"
    page = client.get(URL).content.decode()
    assert "pages now show times in Asia/Kolkata time" in page and "<strong>Asia/Kolkata</strong>" in page

    with django_capture_on_commit_callbacks(execute=True):
        client.post(URL, {"time_zone": ""})
    assert "<strong>Europe/Berlin</strong>" in client.get(URL).content.decode()


def test_the_preferences_page_refuses_a_zone_not_in_the_list(team):
    client = logged_in(member_of(team, "scientist", username="sci"))
    response = client.post(URL, {"time_zone": "Nowhere/Town"})
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert not UserPreference.objects.exists()


def test_the_preferences_page_needs_a_signed_in_user(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_pages_run_in_the_viewers_zone_and_the_api_in_utc(team, rf, django_capture_on_commit_callbacks):
    from django.http import HttpResponse
    from django.utils import timezone

    from governance.middleware import ViewerTimeZoneMiddleware

    user = member_of(team, "scientist", username="viewer")
    with django_capture_on_commit_callbacks(execute=True):
        user_preference_update(user=user, time_zone="Asia/Tokyo")
    middleware = ViewerTimeZoneMiddleware(lambda request: HttpResponse(timezone.get_current_timezone_name()))
    for path, zone in (("/exports/", "Asia/Tokyo"), ("/api/experiment-console/sessions", "UTC")):
        request = rf.get(path)
        request.user = user
        assert middleware(request).content.decode() == zone, path
    assert timezone.get_current_timezone_name() == "UTC"


def test_when_shows_one_format_in_the_active_zone():
    from django.template import engines
    from django.utils import timezone

    template = engines["django"].from_string('{{ moment|when }} · {{ moment|when:"seconds" }}')
    moment = datetime(2026, 1, 15, 9, 30, 5, 123456, tzinfo=UTC)
    with timezone.override("Asia/Tokyo"):
        assert template.render({"moment": moment}) == (
            '<time datetime="2026-01-15T09:30:05+00:00">2026-01-15 18:30 JST</time> · '
            '<time datetime="2026-01-15T09:30:05+00:00">2026-01-15 18:30:05 JST</time>'
        )
    with timezone.override("Asia/Kolkata"):
        assert "2026-01-15 15:00 IST" in template.render({"moment": moment})
    with timezone.override("America/Sao_Paulo"):  # a zone without an abbreviation shows its offset
        assert "2026-01-15 06:30 UTC-03:00" in template.render({"moment": moment})
