"""The exports list page: the user's teams only, filters, search and pages (docs/pages.md)."""

import pytest
from django.test import Client

from approvals import views
from exports.choices import ExportStatus
from exports.models import NarrativeExport
from exports.services.executions import execution_create
from tests.approvals.factories import export_with_ladder
from tests.factories import member_of

pytestmark = pytest.mark.django_db

URL = "/exports/"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def exports(team, other_team, crew, snapshot):
    assay = execution_create(team=team, title="Potency assay lot 7", owner=crew.author)
    stability = execution_create(team=team, title="Stability study", owner=crew.author)
    foreign = execution_create(team=other_team, title="Foreign secret study", owner=crew.author)
    made = {
        "assay": export_with_ladder(execution=assay, author=crew.author, snapshot=snapshot),
        "stability": export_with_ladder(execution=stability, author=crew.author, snapshot=snapshot),
        "foreign": export_with_ladder(execution=foreign, author=crew.author, snapshot=snapshot),
    }
    NarrativeExport.objects.filter(pk=made["stability"].pk).update(status=ExportStatus.REJECTED)
    return made


def listed(response) -> str:
    """The results part of the page (the filter form above it names every execution)."""
    assert response.status_code == 200, response.content[:500]
    return response.content.decode().split('id="results-heading"', 1)[1]


def test_the_list_shows_the_teams_exports_with_labels_not_codes(crew, exports):
    html = listed(logged_in(crew.reviewer).get(URL))
    assert "Potency assay lot 7" in html and "Stability study" in html
    assert "Foreign secret study" not in html
    assert ">Awaiting approval<" in html and ">Rejected<" in html
    assert "awaiting_approval<" not in html
    assert "(Reviewer)" in html  # the active stage's role, labelled


def test_filters_and_search_narrow_the_list(crew, exports, team):
    client = logged_in(crew.reviewer)
    html = listed(client.get(URL, {"status": "rejected"}))
    assert "Stability study" in html and "Potency assay lot 7" not in html
    html = listed(client.get(URL, {"q": "potency"}))
    assert "Potency assay lot 7" in html and "Stability study" not in html
    html = listed(client.get(URL, {"q": f"#{exports['stability'].pk}"}))
    assert "Stability study" in html and "Potency assay lot 7" not in html
    html = listed(client.get(URL, {"execution": exports["assay"].execution_id}))
    assert "Potency assay lot 7" in html and "Stability study" not in html
    html = listed(client.get(URL, {"team": team.slug, "status": ["rejected", "awaiting_approval"]}))
    assert "Potency assay lot 7" in html and "Stability study" in html
    html = listed(client.get(URL, {"q": "Foreign"}))
    assert "No exports match these filters" in html and "Foreign secret study" not in html


def test_another_teams_slug_lists_nothing(crew, exports, other_team):
    html = listed(logged_in(crew.reviewer).get(URL, {"team": other_team.slug}))
    assert "No exports match" in html and "Foreign secret study" not in html


def test_a_bad_filter_is_a_clear_400_not_a_500(crew, exports):
    client = logged_in(crew.reviewer)
    for params in ({"status": "nonsense"}, {"execution": "99999999999999999999"}, {"overdue": "maybe"}):
        response = client.get(URL, params)
        assert response.status_code == 400, params
        assert 'data-testid="filter-error"' in response.content.decode()


def test_pages_of_exports_keep_the_filters(crew, exports, monkeypatch, team, snapshot):
    monkeypatch.setattr(views, "EXPORTS_PER_PAGE", 2)
    execution = execution_create(team=team, title="Potency assay lot 8", owner=crew.author)
    export_with_ladder(execution=execution, author=crew.author, snapshot=snapshot)
    export_with_ladder(execution=execution, author=crew.author, snapshot=snapshot, version=2)
    client = logged_in(crew.reviewer)
    first = listed(client.get(URL, {"q": "potency"}))
    assert "Page 1 of 2" in first and "q=potency&amp;page=2" in first
    second = listed(client.get(URL, {"q": "potency", "page": 2}))
    assert "Page 2 of 2" in second and "Potency assay lot 7" in second


def test_the_list_has_a_fixed_number_of_queries(crew, exports, team, snapshot, django_assert_max_num_queries):
    client = logged_in(crew.reviewer)
    client.get(URL)
    for n in range(6):
        execution = execution_create(team=team, title=f"Extra run {n}", owner=crew.author)
        export_with_ladder(execution=execution, author=crew.author, snapshot=snapshot)
    with django_assert_max_num_queries(12):
        listed(client.get(URL))


def test_an_outsider_sees_none_of_the_teams_exports(exports, other_team):
    outsider = member_of(other_team, "reviewer", username="outsider")
    html = listed(logged_in(outsider).get(URL))
    assert "Foreign secret study" in html and "Potency assay lot 7" not in html


def test_the_operators_api_searches_with_the_same_filter(client_for, crew, exports):
    client = client_for(crew.operator)
    found = client.get("/api/governance/exports", {"q": "potency"}).json()
    assert [row["id"] for row in found["results"]] == [exports["assay"].pk]
    assert client.get("/api/governance/exports", {"q": "Foreign"}).json()["count"] == 0
    response = client.get("/api/governance/exports", {"q": "x", "execution": "1e400"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_filter"
