"""Builders for approval tests: a team with one user per ladder role, exports with a rendered narrative."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from approvals.services.ladders import ladder_instantiate
from exports.models import NarrativeExport
from exports.narratives import narrative_digest
from governance.services.templates import template_publish
from tests.factories import PASSWORD, member_of

STAGES = [
    {"name": "Scientific review", "required_role": "reviewer", "sla_hours": 24, "meaning": "Reviewed"},
    {"name": "QA approval", "required_role": "qa_approver", "sla_hours": 48, "meaning": "Approved for release"},
    {"name": "Compliance sign-off", "required_role": "compliance", "sla_hours": 72, "meaning": "Compliant"},
]


@dataclass
class Crew:
    author: object
    reviewer: object
    reviewer2: object
    qa: object
    compliance: object
    operator: object
    admin: object
    auditor: object

    def signer_for(self, role: str):
        return {"reviewer": self.reviewer, "qa_approver": self.qa, "compliance": self.compliance}[role]


def crew_for(team) -> Crew:
    return Crew(
        author=member_of(team, "scientist", username="author"),
        reviewer=member_of(team, "reviewer", username="rev"),
        reviewer2=member_of(team, "reviewer", username="rev2"),
        qa=member_of(team, "qa_approver", username="qa"),
        compliance=member_of(team, "compliance", username="comp"),
        operator=member_of(team, "operator", username="ops"),
        admin=member_of(team, "admin", username="adm"),
        auditor=member_of(team, "auditor", username="aud"),
    )


def published_snapshot(*, key: str = "standard-release", stages=None, sla_defaults=None):
    from governance.models import WorkflowTemplate

    template = WorkflowTemplate.objects.create(
        template_key=key,
        version=1,
        name="Standard release",
        stage_blueprints=stages or STAGES,
        permitted_roles=["reviewer", "qa_approver", "compliance"],
        sla_defaults=sla_defaults or {"sla_hours": 48, "escalate_after_hours": 24},
    )
    return template_publish(template=template)


def export_with_ladder(*, execution, author, snapshot=None, version: int | None = None) -> NarrativeExport:
    """A rendered export version and its ladder, as export creation leaves them."""
    version = version or (NarrativeExport.objects.filter(execution=execution).count() + 1)
    narrative = f"# Dossier for execution {execution.pk} v{version}\n\nGenerated {timezone.now().isoformat()}\n"
    export = NarrativeExport.objects.create(
        execution=execution,
        version=version,
        author=author,
        template_snapshot=snapshot,
        narrative_markdown=narrative,
        narrative_digest=narrative_digest(narrative, []),
        evidence_manifest=[],
    )
    ladder_instantiate(export=export, actor=author)
    export.refresh_from_db()
    return export


__all__ = ["PASSWORD", "Crew", "crew_for", "export_with_ladder", "published_snapshot"]
