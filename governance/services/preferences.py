"""Writes for a user's own page preferences (docs/pages.md)."""

from __future__ import annotations

from django.db import transaction

from config.errors import ValidationFailed
from governance.models import TIME_ZONES, UserPreference
from governance.services.outbox import viewer_time_zones_forget


@transaction.atomic
def user_preference_update(*, user, time_zone: str) -> UserPreference:
    """Set the zone the user's pages show times in; an empty zone follows the team's."""
    if time_zone and time_zone not in TIME_ZONES:
        raise ValidationFailed(
            f"'{time_zone}' is not a known IANA time zone.",
            code="invalid_time_zone",
            details={"fields": {"time_zone": ["Choose a time zone from the list."]}},
        )
    preference, _ = UserPreference.objects.select_for_update().get_or_create(user=user)
    if preference.time_zone != time_zone:
        preference.time_zone = time_zone
        preference.save(update_fields=["time_zone", "updated_at"])
    viewer_time_zones_forget(user_ids=[user.pk])
    return preference
