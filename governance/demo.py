"""Demo identities: the team `biolabs`, its users and their roles (SPEC §2)."""

from django.conf import settings
from django.contrib.auth import get_user_model

from governance.models import Team
from governance.services.teams import membership_grant, team_create

DEMO_USERS = {
    "demo-scientist": ("Sam", "Rivera", ["scientist"]),
    "demo-reviewer": ("Robin", "Okafor", ["reviewer"]),
    "demo-approver": ("Avery", "Lindqvist", ["qa_approver", "pi"]),
    "demo-operator": ("Oni", "Marsh", ["operator"]),
    "demo-compliance": ("Casey", "Nakamura", ["compliance"]),
    "demo-admin": ("Alex", "Moreau", ["admin"]),
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
    stdout.write(f"team {team.slug}: {len(DEMO_USERS)} demo users (password from DEMO_PASSWORD)")


def demo_team() -> Team:
    return Team.objects.get(slug="biolabs")
