"""The password's age and token revocation on a password change, token revocation on the loss of the last
membership (docs/authentication.md), and the viewer time zones a team or membership change makes stale (docs/pages.md).

Hooked to model signals so that every path is covered: ``set_password`` + ``save`` in a service, the admin's
password form, ``manage.py changepassword``, a removed membership, a deleted team. A password hash upgraded by a
login is not a change (Django and config.passwords clear ``_password`` for it).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from governance.models import Membership, Team
from governance.passwords import password_changed_record
from governance.selectors.preferences import viewer_time_zone_refresh
from governance.services.outbox import viewer_time_zones_forget
from governance.services.tokens import tokens_revoke_for_user


def _password_changed(sender, instance, created: bool, **kwargs) -> None:
    if getattr(instance, "_password", None) is None:
        return
    password_changed_record(user=instance)  # the password's age (docs/authentication.md, "Password aging")
    if not created:
        tokens_revoke_for_user(user=instance, reason="password_changed")


@receiver(post_delete, sender=Membership, dispatch_uid="governance.tokens.last_membership")
def _membership_removed(sender, instance: Membership, **kwargs) -> None:
    User = get_user_model()
    user = User.objects.filter(pk=instance.user_id).first()
    if user is None:  # the user itself is being deleted: its tokens go with it
        return
    if not Membership.objects.filter(user_id=user.pk).exists():
        tokens_revoke_for_user(user=user, reason="last_membership_removed")


def connect() -> None:
    post_save.connect(_password_changed, sender=get_user_model(), dispatch_uid="governance.tokens.password")


@receiver(post_save, sender=Team, dispatch_uid="governance.time_zone.team")
def _team_time_zone_changed(sender, instance: Team, created: bool, **kwargs) -> None:
    """A team's zone is the default of its members' pages (docs/pages.md): they read it again."""
    if created:
        return
    viewer_time_zones_forget(user_ids=Membership.objects.filter(team_id=instance.pk).values_list("user_id", flat=True))


@receiver(post_save, sender=Membership, dispatch_uid="governance.time_zone.membership")
@receiver(post_delete, sender=Membership, dispatch_uid="governance.time_zone.membership_deleted")
def _membership_time_zone_changed(sender, instance: Membership, **kwargs) -> None:
    viewer_time_zones_forget(user_ids=[instance.user_id])


@receiver(user_logged_in, dispatch_uid="governance.time_zone.login")
def _time_zone_on_login(sender, request, user, **kwargs) -> None:
    """Resolved at sign-in, so pages read the viewer's zone from the cache."""
    viewer_time_zone_refresh(user=user)
