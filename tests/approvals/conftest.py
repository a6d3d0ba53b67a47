import pytest

from tests.approvals.factories import crew_for, export_with_ladder, published_snapshot


@pytest.fixture(autouse=True)
def packaging_calls(monkeypatch):
    """The exports whose packaging was enqueued (exports' primitive, wrapped to record its calls)."""
    from exports.services import packaging

    calls = []
    real = packaging.packaging_enqueue

    def recording(*, export, actor=None, **options):
        calls.append(export.pk)
        return real(export=export, actor=actor, **options)

    monkeypatch.setattr(packaging, "packaging_enqueue", recording)
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
