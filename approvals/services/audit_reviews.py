"""Periodic audit-trail review (EU GMP Annex 11 section 9; docs/part11.md, "Audit-trail review").

Each calendar month (UTC) every team gets one review of its audit trail over that month, opened by
``manage.py schedule_audit_reviews`` (run daily by the scheduler; a month's reviews are opened once) and assigned to
an independent reviewer: a member holding ``compliance`` or ``admin`` in the team who is the actor of none of the
team's audit events in the period. The review lists the exceptions first (lockouts, resets, delegations,
overrides, retention changes, hold releases, integrity failures, drift) and is completed with an electronic
signature (re-authentication, meaning, comment) by an independent member; anyone who acted in the period is
refused with 403 ``reviewer_not_independent``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from approvals.choices import AUDIT_REVIEWER_ROLES, AuditReviewStatus
from approvals.models import AuditReview
from approvals.services.ladders import NARRATIVE_INTEGRITY_AUDIT_ACTION, printed_name
from approvals.services.monitor import INCONSISTENCY_AUDIT_ACTION
from approvals.services.signing import LOCKOUT_AUDIT_ACTION
from approvals.services.signing_controls import signature_authenticate, signing_session_touch
from config.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from exports.events import EventType
from governance.models import AuditEvent, Membership, Team
from governance.selectors.teams import user_has_role
from governance.services.audit import audit_record

# The events a reviewer looks at first, by what they are (docs/part11.md lists them).
EXCEPTION_ACTIONS: dict[str, str] = {
    LOCKOUT_AUDIT_ACTION: "lockout",
    EventType.STAGE_RESET: "reset",
    EventType.STAGE_DELEGATED: "delegation",
    EventType.EXECUTION_OVERRIDE: "override",
    EventType.EXECUTION_OVERRIDE_RECORDED: "override",
    EventType.RETENTION_SHORTENED: "retention_change",
    EventType.LEGAL_HOLD_RELEASED: "hold_release",
    EventType.ARTIFACT_INTEGRITY_FAILED: "integrity_failure",
    EventType.ARTIFACT_DECRYPTION_FAILED: "integrity_failure",
    NARRATIVE_INTEGRITY_AUDIT_ACTION: "integrity_failure",
    INCONSISTENCY_AUDIT_ACTION: "drift",
}
DEFAULT_REVIEW_MEANING = "Audit trail reviewed"
EXCEPTIONS_SHOWN = 500


class ReviewerNotIndependent(PermissionDenied):
    code = "reviewer_not_independent"
    default_message = "You acted in this period's audit trail: an independent reviewer must complete this review."


def month_period(moment: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding ``moment``: [start, end)."""
    moment = moment.astimezone(UTC)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def previous_month_period(now: datetime) -> tuple[datetime, datetime]:
    start, _ = month_period(now)
    return month_period(start - timedelta(days=1))


def period_events(*, team_id: int, start: datetime, end: datetime) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(team_id=team_id, created_at__gte=start, created_at__lt=end)


def period_actor_ids(*, team_id: int, start: datetime, end: datetime) -> set[int]:
    """Everyone who is the actor of one of the team's audit events in the period."""
    rows = period_events(team_id=team_id, start=start, end=end).exclude(actor_id=None)
    return set(rows.values_list("actor_id", flat=True).distinct())


def independent_reviewer_ids(*, team_id: int, start: datetime, end: datetime) -> list[int]:
    """Members who may review the period: ``compliance``/``admin`` holders who acted in none of its events, the
    least loaded (fewest open reviews) first."""
    actors = period_actor_ids(team_id=team_id, start=start, end=end)
    candidates = (
        Membership.objects.filter(team_id=team_id, role__key__in=AUDIT_REVIEWER_ROLES, user__is_active=True)
        .exclude(user_id__in=actors)
        .values_list("user_id", "user__username")
        .distinct()
    )
    load = dict(
        AuditReview.objects.filter(status=AuditReviewStatus.OPEN, reviewer_id__in=[pk for pk, _ in candidates])
        .values("reviewer_id")
        .annotate(open=Count("id"))
        .values_list("reviewer_id", "open")
    )
    return [pk for pk, name in sorted(candidates, key=lambda row: (load.get(row[0], 0), row[1]))]


@dataclass(frozen=True)
class ScheduleResult:
    period_start: datetime
    period_end: datetime
    opened: list[AuditReview]
    unassigned: list[AuditReview]


def audit_reviews_schedule(*, now: datetime | None = None, period_start: datetime | None = None) -> ScheduleResult:
    """Open the review of the period (by default the month before ``now``) for every team that existed in it and
    has none yet. Idempotent: a second run, or a concurrent one, opens nothing more."""
    now = now or timezone.now()
    start, end = month_period(period_start) if period_start is not None else previous_month_period(now)
    if end > now:
        raise ValidationFailed(f"The period {start:%Y-%m} has not ended yet.", code="period_not_ended")
    opened: list[AuditReview] = []
    teams = Team.objects.filter(created_at__lt=end).exclude(
        pk__in=AuditReview.objects.filter(period_start=start).values("team_id")
    )
    for team in teams.order_by("pk"):
        review = _review_open(team=team, start=start, end=end, now=now)
        if review is not None:
            opened.append(review)
    return ScheduleResult(start, end, opened, [review for review in opened if review.reviewer_id is None])


def _review_open(*, team: Team, start: datetime, end: datetime, now: datetime) -> AuditReview | None:
    reviewers = independent_reviewer_ids(team_id=team.pk, start=start, end=end)
    try:
        with transaction.atomic():
            review = AuditReview.objects.create(
                team=team,
                period_start=start,
                period_end=end,
                reviewer_id=reviewers[0] if reviewers else None,
                opened_at=now,
                due_at=end + timedelta(days=settings.DOSSIER_AUDIT_REVIEW_DUE_DAYS),
            )
            audit_record(
                action=EventType.AUDIT_REVIEW_OPENED,
                obj=review,
                team_id=team.pk,
                payload={
                    "period_start": start,
                    "period_end": end,
                    "reviewer_id": review.reviewer_id,
                    "due_at": review.due_at,
                },
            )
    except IntegrityError:  # a concurrent run opened it first
        return None
    return review


def audit_reviews_for_user(*, user, filters: dict | None = None) -> QuerySet[AuditReview]:
    """Reviews of the user's teams, newest period first (``status``, ``team`` slug and ``overdue`` filters)."""
    filters = filters or {}
    reviews = AuditReview.objects.visible_to(user).select_related("team", "reviewer", "completed_by")
    if status := filters.get("status"):
        reviews = reviews.filter(status=status)
    if team := filters.get("team"):
        reviews = reviews.filter(team__slug=team)
    if filters.get("overdue"):
        reviews = reviews.filter(status=AuditReviewStatus.OPEN, due_at__lt=timezone.now())
    return reviews.order_by("-period_start", "team__slug")


def overdue_audit_reviews(*, user, now: datetime | None = None) -> QuerySet[AuditReview]:
    """Open reviews past their due date among the user's teams, most overdue first (the overdue dashboard)."""
    reviews = AuditReview.objects.visible_to(user).filter(
        status=AuditReviewStatus.OPEN, due_at__lt=now or timezone.now()
    )
    return reviews.select_related("team", "reviewer").order_by("due_at", "pk")


def review_overdue(review: AuditReview, *, now: datetime | None = None) -> bool:
    return review.status == AuditReviewStatus.OPEN and review.due_at < (now or timezone.now())


def audit_review_get_for_user(*, user, review_id: int) -> AuditReview:
    review = audit_reviews_for_user(user=user).filter(pk=review_id).first()
    if review is None:
        raise NotFound(f"Audit review {review_id} was not found.", code="audit_review_not_found")
    return review


@dataclass(frozen=True)
class ReviewContent:
    """What a review covers: the exceptions first, then how many events of each action the period holds."""

    exceptions: list[dict]
    exceptions_total: int
    action_counts: list[dict]
    events_total: int


def audit_review_content(*, review: AuditReview) -> ReviewContent:
    events = period_events(team_id=review.team_id, start=review.period_start, end=review.period_end)
    exceptional = events.filter(action__in=list(EXCEPTION_ACTIONS))
    rows = exceptional.order_by("sequence").values(
        "sequence", "created_at", "action", "actor_username", "object_type", "object_id", "payload"
    )[:EXCEPTIONS_SHOWN]
    exceptions = [{**row, "kind": EXCEPTION_ACTIONS[row["action"]]} for row in rows]
    counts = list(events.values("action").annotate(count=Count("id")).order_by("action"))
    total = sum(row["count"] for row in counts)
    return ReviewContent(exceptions, exceptional.count(), counts, total)


def reviewed_digest(*, review: AuditReview) -> tuple[str, int, int]:
    """(sha256 over the hashes of the period's rows in sequence order, rows, exception rows): what is signed."""
    digest = hashlib.sha256()
    rows = exceptions = 0
    events = period_events(team_id=review.team_id, start=review.period_start, end=review.period_end)
    for row_hash, action in events.order_by("sequence").values_list("hash", "action").iterator(chunk_size=5000):
        digest.update(row_hash.encode())
        rows += 1
        exceptions += action in EXCEPTION_ACTIONS
    return digest.hexdigest(), rows, exceptions


def _reviewer_check(review: AuditReview, actor) -> None:
    if not user_has_role(user=actor, team_id=review.team_id, roles=AUDIT_REVIEWER_ROLES):
        raise PermissionDenied(
            "You need the role compliance or admin in this team to review its audit trail.",
            details={"required_roles": sorted(AUDIT_REVIEWER_ROLES)},
        )
    if actor.pk in period_actor_ids(team_id=review.team_id, start=review.period_start, end=review.period_end):
        raise ReviewerNotIndependent()


def _open_or_conflict(review: AuditReview) -> None:
    if review.status != AuditReviewStatus.OPEN:
        raise Conflict(f"Audit review {review.pk} is already completed.", code="audit_review_completed")


def audit_review_complete(
    *,
    review_id: int,
    actor,
    password: str,
    meaning: str = "",
    comment: str = "",
    username: str | None = None,
    signing_session: str | None = None,
) -> AuditReview:
    """Sign the review: an independent reviewer re-authenticates (the same controls as any signature) and the
    review records their printed name, the meaning, the comment and the digest of the rows reviewed."""
    review = audit_review_get_for_user(user=actor, review_id=review_id)
    _open_or_conflict(review)
    _reviewer_check(review, actor)
    signature_authenticate(
        user=actor, password=password, username=username, session_key=signing_session, team_id=review.team_id
    )
    with transaction.atomic():
        review = AuditReview.objects.select_for_update().select_related("team").get(pk=review.pk)
        _open_or_conflict(review)
        now = timezone.now()
        review.events_digest, review.events_total, review.exceptions_total = reviewed_digest(review=review)
        review.status, review.completed_by, review.completed_at = AuditReviewStatus.COMPLETED, actor, now
        review.printed_name = printed_name(actor)
        review.meaning = meaning.strip() or DEFAULT_REVIEW_MEANING
        review.comment = comment
        review.save()
        audit_record(
            action=EventType.AUDIT_REVIEW_COMPLETED,
            actor=actor,
            obj=review,
            team_id=review.team_id,
            payload={
                "period_start": review.period_start,
                "period_end": review.period_end,
                "meaning": review.meaning,
                "comment": comment,
                "events_total": review.events_total,
                "exceptions_total": review.exceptions_total,
                "events_digest": review.events_digest,
                "assigned_reviewer_id": review.reviewer_id,
            },
        )
        signing_session_touch(user=actor, session_key=signing_session, now=now)
    return review
