"""Periodic tasks live in the database (django-celery-beat); this keeps them in line with settings."""

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask


@dataclass(frozen=True)
class ScheduleChange:
    name: str
    task: str
    every_seconds: int
    created: bool
    updated: bool


@transaction.atomic
def schedules_setup() -> list[ScheduleChange]:
    """Create or update one PeriodicTask per entry of settings.DOSSIER_SCHEDULES; idempotent."""
    changes = []
    for name, entry in sorted(settings.DOSSIER_SCHEDULES.items()):
        seconds = int(entry["every"].total_seconds())
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
        task = PeriodicTask.objects.filter(name=name).first()
        if task is None:
            PeriodicTask.objects.create(name=name, task=entry["task"], interval=interval, enabled=True)
            changes.append(ScheduleChange(name, entry["task"], seconds, created=True, updated=False))
            continue
        updated = task.task != entry["task"] or task.interval_id != interval.pk
        if updated:
            task.task, task.interval, task.crontab = entry["task"], interval, None
            task.save()
        changes.append(ScheduleChange(name, entry["task"], seconds, created=False, updated=updated))
    return changes
