import pytest

from governance.models import WorkflowTemplate
from governance.services.templates import template_create, template_publish


def ladder(*roles: str, sla: int = 24) -> list[dict]:
    """Stages for ``roles`` in order: ``ladder("reviewer", "qa_approver")``."""
    return [
        {"name": f"Stage {n} ({role})", "required_role": role, "sla_hours": sla * n, "meaning": f"Signed by {role}"}
        for n, role in enumerate(roles, start=1)
    ]


THREE_STAGES = ladder("reviewer", "qa_approver", "compliance")


@pytest.fixture
def curator(member):
    return member("compliance", username="casey")


@pytest.fixture
def make_template(curator, team):
    """A template of ``team`` (``team=None`` for a platform template, created by the system)."""

    def make(key: str = "qa-release", *, publish: bool = False, **fields) -> WorkflowTemplate:
        fields.setdefault("name", key.replace("-", " ").title())
        fields.setdefault("stages", THREE_STAGES)
        fields.setdefault("team", team)
        actor = fields.pop("actor", curator if fields["team"] is not None else None)
        template = template_create(actor=actor, template_key=key, **fields)
        if publish:
            template_publish(template=template, actor=actor)
            template.refresh_from_db()
        return template

    return make
