import sys
import types

import pytest

from tests.approvals.factories import crew_for, export_with_ladder, published_snapshot


@pytest.fixture(autouse=True)
def packaging_calls(monkeypatch):
    """Records hand-offs to exports' packaging primitive; stands in for it until that primitive exists here."""
    calls = []
    try:
        import exports.services.packaging  # noqa: F401

        return calls
    except ImportError:
        pass
    from django.utils import timezone

    from exports.models import NarrativeExport

    def packaging_enqueue(*, export, actor=None):
        calls.append(export.pk)
        NarrativeExport.objects.filter(pk=export.pk).update(status="queued", queued_at=timezone.now())

    module = types.ModuleType("exports.services.packaging")
    module.packaging_enqueue = packaging_enqueue
    monkeypatch.setitem(sys.modules, "exports.services.packaging", module)
    return calls


@pytest.fixture
def crew(team):
    return crew_for(team)


@pytest.fixture
def snapshot(db):
    return published_snapshot()


@pytest.fixture
def ladder_execution(team, crew):
    from exports.services.executions import execution_create

    return execution_create(team=team, title="Stability study", owner=crew.author, protocol_template_key="stability")


@pytest.fixture
def export(ladder_execution, crew, snapshot):
    return export_with_ladder(execution=ladder_execution, author=crew.author, snapshot=snapshot)
