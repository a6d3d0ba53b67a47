import pytest
from django.utils import timezone

from tests.analytics.factories import known_exports
from tests.approvals.factories import crew_for, published_snapshot


@pytest.fixture
def crew(team):
    return crew_for(team)


@pytest.fixture
def snapshot(db):
    return published_snapshot()


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def known(team, crew, snapshot, now):
    return known_exports(team=team, author=crew.author, snapshot=snapshot, now=now)


@pytest.fixture
def foreign(other_team, snapshot, now):
    """One export of team beta, overdue at review: it must never appear to alpha's members."""
    from tests.analytics.factories import new_export, set_stage
    from tests.factories import member_of

    author = member_of(other_team, "scientist", username="beta-author")
    export = new_export(team=other_team, author=author, snapshot=snapshot, title="Beta secret run")
    set_stage(export, 0, now=now, started=-30, due=-6)
    return export
