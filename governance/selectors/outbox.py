"""Reads of the transactional outbox for metrics and operators (docs/operations.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Min, Q
from django.utils import timezone

from governance.models import OutboxMessage


@dataclass(frozen=True)
class OutboxBacklog:
    pending: int
    failing: int
    oldest_age_seconds: float
    pending_by_handler: dict[str, int] = field(default_factory=dict)


def outbox_backlog() -> OutboxBacklog:
    """Pending messages (``failing``: those with a failed attempt) and the age of the oldest, in one query."""
    rows = list(
        OutboxMessage.objects.filter(delivered_at__isnull=True)
        .values("handler")
        .annotate(pending=Count("id"), failing=Count("id", filter=Q(attempts__gt=0)), oldest=Min("created_at"))
        .order_by("handler")
    )
    by_handler = {row["handler"]: row["pending"] for row in rows}
    oldest = min((row["oldest"] for row in rows), default=None)
    age = max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0
    return OutboxBacklog(
        pending=sum(by_handler.values()),
        failing=sum(row["failing"] for row in rows),
        oldest_age_seconds=age,
        pending_by_handler=by_handler,
    )
