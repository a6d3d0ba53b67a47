"""The legal-hold admin pages: a compliance officer places and releases holds with reasons through the services;
other teams' holds are absent, tombstones are read-only (docs/records-lifecycle.md)."""

import pytest

from exports.models import ExecutionEvent, LegalHold

pytestmark = pytest.mark.django_db


@pytest.fixture
def officer_client(client, member):
    officer = member("compliance", username="officer")
    officer.is_staff = True
    officer.save()
    client.force_login(officer)
    return client


def test_an_officer_places_and_releases_a_hold_from_the_admin(officer_client, team, execution, other_team, member):
    page = officer_client.get("/admin/exports/legalhold/add/")
    assert page.status_code == 200 and "export_id" in page.content.decode()
    placed = officer_client.post(
        "/admin/exports/legalhold/add/", {"team": team.pk, "scope": "team", "reason": "Inspection"}
    )
    assert placed.status_code == 302, placed.content.decode()[:2000]
    hold = LegalHold.objects.get()
    assert hold.placed_by.username == "officer" and hold.is_active
    assert ExecutionEvent.objects.filter(execution=execution, event_type="governance.legal_hold.placed").exists()

    listing = officer_client.get("/admin/exports/legalhold/?active=true")
    assert [row.pk for row in listing.context["cl"].result_list] == [hold.pk]
    released = officer_client.post(f"/admin/exports/legalhold/{hold.pk}/change/", {"release_reason": "Closed"})
    assert released.status_code == 302
    hold.refresh_from_db()
    assert hold.released_at is not None and hold.release_reason == "Closed"
    assert list(officer_client.get("/admin/exports/legalhold/?active=true").context["cl"].result_list) == []
    assert officer_client.get(f"/admin/exports/legalhold/{hold.pk}/change/").status_code == 200

    refused = officer_client.post(
        "/admin/exports/legalhold/add/", {"team": other_team.pk, "scope": "team", "reason": "Not mine"}
    )
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    outsider = member("compliance", username="beta-officer", in_team=other_team)
    foreign = LegalHold.objects.create(team=other_team, scope="team", reason="Theirs", placed_by=outsider)
    assert officer_client.get(f"/admin/exports/legalhold/{foreign.pk}/change/").status_code == 404
    assert officer_client.get("/admin/exports/retentiontombstone/").status_code == 200
