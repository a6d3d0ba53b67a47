from governance.models import WorkflowTemplate, WorkflowTemplateSnapshot
from governance.services.templates import template_publish


def published_template_create(
    template_key: str = "standard-release", retention_days: int = 30
) -> WorkflowTemplateSnapshot:
    """The default ladder template, published: exports need a published snapshot to start from."""
    template = WorkflowTemplate.objects.create(
        template_key=template_key,
        version=1,
        name="Standard release ladder",
        stage_blueprints=[
            {"name": "Scientific review", "required_role": "reviewer", "sla_hours": 24, "meaning": "Reviewed"},
            {"name": "QA approval", "required_role": "qa_approver", "sla_hours": 48, "meaning": "Approved"},
        ],
        permitted_roles=["reviewer", "qa_approver"],
        sla_defaults={"sla_hours": 48, "escalate_after_hours": 24},
        retention_days=retention_days,
    )
    return template_publish(template=template)
