"""Writes for teams and memberships."""

from django.contrib.auth import get_user_model
from django.db import transaction

from config.errors import ValidationFailed
from governance.models import Membership, Role, Team
from governance.services.audit import audit_record

User = get_user_model()


@transaction.atomic
def team_create(*, slug: str, name: str, actor=None) -> Team:
    team, created = Team.objects.get_or_create(slug=slug, defaults={"name": name})
    if created:
        audit_record(action="team.created", actor=actor, obj=team, team_id=team.pk, payload={"slug": slug})
    return team


@transaction.atomic
def membership_grant(*, user, team: Team, role_key: str, actor=None) -> Membership:
    role = Role.objects.filter(key=role_key).first()
    if role is None:
        raise ValidationFailed(f"Unknown role '{role_key}'.", details={"role": [f"Unknown role '{role_key}'."]})
    membership, created = Membership.objects.get_or_create(user=user, team=team, role=role)
    if created:
        audit_record(
            action="membership.granted",
            actor=actor,
            obj=membership,
            team_id=team.pk,
            payload={"user": user.username, "role": role_key},
        )
    return membership
