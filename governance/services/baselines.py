"""The baseline lifecycle (docs/templates-and-baselines.md, "Baselines"): submit → approve | reject → publish (current,
versioned) → roll back.

Who may do what (roles held in the baseline's team):
- submit: ``scientist`` or ``pi``, naming one or more reviewers who hold ``reviewer`` (never themselves);
- approve / reject: a named reviewer who still holds ``reviewer``;
- publish: ``compliance`` or ``admin``, not the submitter;
- roll back (optionally reinstating a previously published version): ``admin``.

Every transition locks the baselines of its (team, protocol template), writes a ``GovernanceBaselineEvent``
through ``record_baseline_event`` and chains an audit row. ``is_current`` is unique per (team, protocol template)
by a partial unique index, so two concurrent publishes can never both win.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from config.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from governance.choices import BaselineEventType, BaselineStatus
from governance.hooks import ExecutionReference, execution_resolver
from governance.models import GovernanceBaseline, GovernanceBaselineEvent
from governance.permissions import (
    BASELINE_PUBLISHERS,
    BASELINE_REVIEWERS,
    BASELINE_ROLLBACK,
    BASELINE_SUBMITTERS,
    require_team_role,
)
from governance.selectors.teams import user_has_role
from governance.services.audit import audit_record, normalize_payload

REINSTATABLE = (BaselineStatus.SUPERSEDED, BaselineStatus.ROLLED_BACK)


@transaction.atomic
def record_baseline_event(
    *,
    baseline: GovernanceBaseline,
    event_type: str,
    actor,
    from_status: str = "",
    payload: dict[str, Any] | None = None,
) -> GovernanceBaselineEvent:
    """Append one transition of ``baseline`` (its status after the change is ``baseline.status``)."""
    payload = normalize_payload(payload)
    event = GovernanceBaselineEvent.objects.create(
        baseline=baseline,
        event_type=event_type,
        from_status=from_status,
        to_status=baseline.status,
        actor=actor,
        actor_username=getattr(actor, "username", "") or "",
        payload=payload,
    )
    audit_record(
        action=f"governance.baseline.{event_type}",
        actor=actor,
        obj=baseline,
        team_id=baseline.team_id,
        payload={
            **payload,
            "baseline_event_id": event.pk,
            "protocol_template_key": baseline.protocol_template_key,
            "version": baseline.version,
            "from_status": from_status,
            "to_status": baseline.status,
        },
    )
    return event


def _execution_for(*, user, execution_id: int) -> ExecutionReference:
    # Executions belong to the exports app, above governance: its resolver answers (docs/architecture.md).
    execution = execution_resolver()(user=user, execution_id=execution_id)
    if execution is None:
        raise NotFound(f"Execution {execution_id} was not found.", code="execution_not_found")
    return execution


def _reviewers(*, usernames: list[str], team_id: int, submitter) -> list:
    names = list(dict.fromkeys(name.strip() for name in usernames if name and name.strip()))
    if not names:
        raise ValidationFailed(
            "Name at least one reviewer.", details={"fields": {"reviewers": ["Name at least one reviewer."]}}
        )
    users = {user.username: user for user in get_user_model().objects.filter(username__in=names, is_active=True)}
    if any(users.get(name) is not None and users[name].pk == submitter.pk for name in names):
        raise PermissionDenied(
            "You cannot review your own proposal.",
            code="separation_of_duties",
            details={"fields": {"reviewers": ["You cannot review your own proposal."]}},
        )
    problems = [
        # One message for unknown users and outsiders: whether someone exists outside the team stays private.
        f"'{name}' does not hold the reviewer role in this team."
        for name in names
        if users.get(name) is None or not user_has_role(user=users[name], team_id=team_id, roles=BASELINE_REVIEWERS)
    ]
    if problems:
        raise NotFound(
            f"Invalid reviewers: {' '.join(problems)}",
            code="reviewer_not_found",
            details={"fields": {"reviewers": problems}},
        )
    return [users[name] for name in names]


@transaction.atomic
def baseline_submit(
    *,
    actor,
    execution_id: int,
    title: str,
    reviewers: list[str],
    summary: str = "",
    parameters: dict[str, Any] | None = None,
) -> GovernanceBaseline:
    execution = _execution_for(user=actor, execution_id=execution_id)
    require_team_role(user=actor, team_id=execution.team_id, roles=BASELINE_SUBMITTERS, action="propose baselines")
    if not execution.protocol_template_key:
        raise ValidationFailed(
            "This execution has no protocol template, so it cannot define a baseline.",
            code="execution_without_protocol",
            details={"fields": {"execution_id": ["The execution has no protocol template."]}},
        )
    chosen = _reviewers(usernames=reviewers, team_id=execution.team_id, submitter=actor)
    baseline = GovernanceBaseline.objects.create(
        team_id=execution.team_id,
        execution_id=execution.id,
        protocol_template_key=execution.protocol_template_key,
        title=title.strip(),
        summary=summary,
        parameters=parameters or {},
        status=BaselineStatus.SUBMITTED,
        submitted_by=actor,
    )
    baseline.reviewers.set(chosen)
    record_baseline_event(
        baseline=baseline,
        event_type=BaselineEventType.SUBMITTED,
        actor=actor,
        payload={"execution_id": execution.id, "reviewers": [user.username for user in chosen]},
    )
    return baseline


def _locked_group(*, baseline_id: int, user) -> tuple[GovernanceBaseline, dict[int, GovernanceBaseline]]:
    """The baseline (404 outside the user's teams) and every baseline of its (team, protocol), locked in id order."""
    found = (
        GovernanceBaseline.objects.visible_to(user)
        .filter(pk=baseline_id)
        .values("team_id", "protocol_template_key")
        .first()
    )
    if found is None:
        raise NotFound(f"Baseline {baseline_id} was not found.", code="baseline_not_found")
    group = {row.pk: row for row in GovernanceBaseline.objects.select_for_update().filter(**found).order_by("id")}
    return group[baseline_id], group


def _require_status(baseline: GovernanceBaseline, expected: tuple[str, ...], action: str) -> None:
    if baseline.status not in expected:
        raise Conflict(
            f"Baseline {baseline.pk} is {baseline.status}; only a baseline that is {' or '.join(expected)} can be "
            f"{action}.",
            code="baseline_invalid_transition",
            details={"baseline_id": baseline.pk, "status": baseline.status, "expected": list(expected)},
        )


def _require_named_reviewer(baseline: GovernanceBaseline, actor) -> None:
    require_team_role(user=actor, team_id=baseline.team_id, roles=BASELINE_REVIEWERS, action="review baselines")
    if not baseline.reviewers.filter(pk=actor.pk).exists():
        raise PermissionDenied("Only a reviewer named on this proposal can decide it.", code="not_a_named_reviewer")


def _decide(*, baseline_id: int, actor, approve: bool, comment: str) -> GovernanceBaseline:
    baseline, _ = _locked_group(baseline_id=baseline_id, user=actor)
    _require_named_reviewer(baseline, actor)
    _require_status(baseline, (BaselineStatus.SUBMITTED,), "approved or rejected")
    if not approve and not comment.strip():
        raise ValidationFailed(
            "Say why the proposal is rejected.", details={"fields": {"comment": ["A reason is required."]}}
        )
    previous = baseline.status
    baseline.status = BaselineStatus.APPROVED if approve else BaselineStatus.REJECTED
    baseline.reviewed_by = actor
    baseline.reviewed_at = timezone.now()
    baseline.review_comment = comment.strip()
    baseline.save()
    record_baseline_event(
        baseline=baseline,
        event_type=BaselineEventType.APPROVED if approve else BaselineEventType.REJECTED,
        actor=actor,
        from_status=previous,
        payload={"comment": baseline.review_comment},
    )
    return baseline


@transaction.atomic
def baseline_approve(*, baseline_id: int, actor, comment: str = "") -> GovernanceBaseline:
    return _decide(baseline_id=baseline_id, actor=actor, approve=True, comment=comment)


@transaction.atomic
def baseline_reject(*, baseline_id: int, actor, comment: str) -> GovernanceBaseline:
    return _decide(baseline_id=baseline_id, actor=actor, approve=False, comment=comment)


def _make_current(baseline: GovernanceBaseline) -> None:
    baseline.is_current = True
    try:
        with transaction.atomic():
            baseline.save()
    except IntegrityError as exc:
        raise Conflict(
            f"Another baseline became current for '{baseline.protocol_template_key}' at the same time; try again.",
            code="baseline_current_conflict",
        ) from exc


@transaction.atomic
def baseline_publish(*, baseline_id: int, actor) -> GovernanceBaseline:
    """Make an approved baseline the current one of its protocol template, with the next version number."""
    baseline, group = _locked_group(baseline_id=baseline_id, user=actor)
    require_team_role(user=actor, team_id=baseline.team_id, roles=BASELINE_PUBLISHERS, action="publish baselines")
    if baseline.submitted_by_id == actor.pk:
        raise PermissionDenied("You cannot publish a baseline you proposed.", code="separation_of_duties")
    _require_status(baseline, (BaselineStatus.APPROVED,), "published")
    now = timezone.now()
    for current in [row for row in group.values() if row.is_current]:
        current.is_current = False
        current.status = BaselineStatus.SUPERSEDED
        current.save()
        record_baseline_event(
            baseline=current,
            event_type=BaselineEventType.SUPERSEDED,
            actor=actor,
            from_status=BaselineStatus.PUBLISHED,
            payload={"superseded_by": baseline.pk},
        )
    versions = GovernanceBaseline.objects.filter(pk__in=group).aggregate(v=Max("version"))["v"] or 0
    previous = baseline.status
    baseline.status = BaselineStatus.PUBLISHED
    baseline.version = versions + 1
    baseline.published_by = actor
    baseline.published_at = now
    _make_current(baseline)
    record_baseline_event(
        baseline=baseline,
        event_type=BaselineEventType.PUBLISHED,
        actor=actor,
        from_status=previous,
        payload={"version": baseline.version},
    )
    return baseline


@transaction.atomic
def baseline_rollback(
    *, baseline_id: int, actor, reason: str, reinstate_baseline_id: int | None = None
) -> GovernanceBaseline:
    """Withdraw the current baseline; with ``reinstate_baseline_id``, make that previously published version of
    the same protocol template current again. Without it the protocol template has no current baseline."""
    baseline, group = _locked_group(baseline_id=baseline_id, user=actor)
    require_team_role(user=actor, team_id=baseline.team_id, roles=BASELINE_ROLLBACK, action="roll back baselines")
    if not baseline.is_current:
        raise Conflict(
            f"Baseline {baseline.pk} is not the current baseline of '{baseline.protocol_template_key}'; only the "
            "current one can be rolled back.",
            code="baseline_not_current",
            details={"baseline_id": baseline.pk, "status": baseline.status},
        )
    if not reason.strip():
        raise ValidationFailed("Say why the baseline is rolled back.", details={"fields": {"reason": ["Required."]}})
    target = None
    if reinstate_baseline_id is not None:
        target = group.get(reinstate_baseline_id)
        if target is None or target.pk == baseline.pk or target.status not in REINSTATABLE:
            raise ValidationFailed(
                "Only a previously published baseline of the same protocol template can be reinstated.",
                code="baseline_not_reinstatable",
                details={
                    "fields": {"reinstate_baseline_id": [f"Baseline {reinstate_baseline_id} cannot be reinstated."]}
                },
            )
    baseline.is_current = False
    baseline.status = BaselineStatus.ROLLED_BACK
    baseline.rolled_back_by = actor
    baseline.rolled_back_at = timezone.now()
    baseline.rollback_reason = reason.strip()
    baseline.save()
    record_baseline_event(
        baseline=baseline,
        event_type=BaselineEventType.ROLLED_BACK,
        actor=actor,
        from_status=BaselineStatus.PUBLISHED,
        payload={"reason": baseline.rollback_reason, "reinstated_baseline_id": target.pk if target else None},
    )
    if target is not None:
        previous = target.status
        target.status = BaselineStatus.PUBLISHED
        _make_current(target)
        record_baseline_event(
            baseline=target,
            event_type=BaselineEventType.REINSTATED,
            actor=actor,
            from_status=previous,
            payload={"replaces_baseline_id": baseline.pk, "reason": baseline.rollback_reason},
        )
    return baseline
