"""Demo identities: the team `biolabs`, its users and their roles (docs/teams-and-roles.md, "Demo data")."""

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model

from governance.choices import TemplateStatus
from governance.models import Team, WorkflowTemplate
from governance.services.clearance import clearance_set
from governance.services.teams import membership_grant, team_create
from governance.services.templates import template_publish

DEMO_USERS = {
    "demo-scientist": ("Sam", "Rivera", ["scientist"]),
    "demo-reviewer": ("Robin", "Okafor", ["reviewer"]),
    "demo-approver": ("Avery", "Lindqvist", ["qa_approver", "pi"]),
    "demo-operator": ("Oni", "Marsh", ["operator"]),
    "demo-compliance": ("Casey", "Nakamura", ["compliance"]),
    "demo-admin": ("Alex", "Moreau", ["admin"]),
}


# Clearances that let the demo's ladders complete whatever the demo exports are classified (docs/clearance.md):
# signers and compliance read everything; the operator keeps the default (Internal).
DEMO_CLEARANCES = {
    "demo-scientist": "Confidential",
    "demo-reviewer": "Restricted",
    "demo-approver": "Restricted",
    "demo-compliance": "Restricted",
    "demo-admin": "Restricted",
}


def demo_user(username: str):
    return get_user_model().objects.get(username=username)


def seed(stdout) -> None:
    team = team_create(slug="biolabs", name="BioLabs Research")
    User = get_user_model()
    for username, (first, last, roles) in DEMO_USERS.items():
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"first_name": first, "last_name": last, "email": f"{username}@biolabs.local"},
        )
        if created or not user.check_password(settings.DEMO_PASSWORD):
            user.set_password(settings.DEMO_PASSWORD)
            user.is_staff = "admin" in roles or "compliance" in roles
            user.is_superuser = "admin" in roles
            user.save()
        for role in roles:
            membership_grant(user=user, team=team, role_key=role)
        if username in DEMO_CLEARANCES:
            clearance_set(team=team, username=username, level=DEMO_CLEARANCES[username], actor=None)
    stdout.write(f"team {team.slug}: {len(DEMO_USERS)} demo users (password from DEMO_PASSWORD)")
    _seed_default_template(stdout)


DEFAULT_STAGES: list[dict[str, Any]] = [
    {"name": "Scientific review", "required_role": "reviewer", "sla_hours": 24, "meaning": "Reviewed"},
    {"name": "QA approval", "required_role": "qa_approver", "sla_hours": 48, "meaning": "Approved for release"},
    {"name": "Compliance sign-off", "required_role": "compliance", "sla_hours": 72, "meaning": "Compliant"},
]


def _seed_default_template(stdout) -> None:
    """The default ladder is a platform template (``team`` null), so every team — genomics too — has one."""
    key = settings.DOSSIER_DEFAULT_TEMPLATE_KEY
    family = WorkflowTemplate.objects.family(team_id=None, template_key=key)
    if family.filter(status=TemplateStatus.PUBLISHED).exists():
        return
    template = family.filter(status=TemplateStatus.DRAFT).first()
    if template is None:
        template = WorkflowTemplate.objects.create(
            team=None,
            template_key=key,
            version=1,
            name="Standard release ladder",
            description="Scientific review, QA approval and compliance sign-off before a dossier is released.",
            stage_blueprints=DEFAULT_STAGES,
            permitted_roles=["reviewer", "qa_approver", "compliance"],
            sla_defaults={"sla_hours": 48, "escalate_after_hours": 24},
            retention_days=3650,
        )
    snapshot = template_publish(template=template)
    stdout.write(f"platform template {key} v{template.version} published (snapshot {snapshot.pk})")


def demo_team() -> Team:
    return Team.objects.get(slug="biolabs")
