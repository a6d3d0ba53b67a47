"""Give every existing template an owner, and every protocol assignment a team (docs/templates-and-baselines.md).

Ownership is decided per template key (all versions of a key move together):

- the default key (``DOSSIER_DEFAULT_TEMPLATE_KEY``) is the fallback of every team: it becomes a platform template;
- otherwise the teams that use the key are collected: the teams of exports pinning one of its snapshots, of its
  team assignments, and — for its protocol assignments — of executions with that protocol template. Exactly one
  team: the key goes to that team. Several teams: it stays a platform template (team null);
- a key nobody uses yet goes to the one team where its creators hold ``admin`` or ``compliance``, if there is
  exactly one; otherwise it is a platform template.

A protocol assignment used to apply in every team. To keep each team's next ladder unchanged, it becomes one
protocol assignment per team that may use its template: every team for a platform template, the owning team for a
team template. Snapshots, exports and audit rows are not touched.

Governance's migrations never depend on the exports app's (docs/architecture.md): the exports models are read when
they exist at this point of the migration plan; when they do not, no export or execution exists yet either.
"""

from django.conf import settings
from django.db.models import Model
from django.db import migrations

CURATOR_ROLES = ("admin", "compliance")


def _exports_model(apps, name: str) -> type[Model] | None:
    try:
        return apps.get_model("exports", name)
    except LookupError:
        return None


def _owner(apps, key: str) -> int | None:
    if key == settings.DOSSIER_DEFAULT_TEMPLATE_KEY:
        return None
    WorkflowTemplate = apps.get_model("governance", "WorkflowTemplate")
    Assignment = apps.get_model("governance", "WorkflowTemplateAssignment")
    Membership = apps.get_model("governance", "Membership")
    NarrativeExport = _exports_model(apps, "NarrativeExport")
    Execution = _exports_model(apps, "Execution")
    teams = set()
    if NarrativeExport is not None:
        teams |= set(
            NarrativeExport.objects.filter(template_snapshot__template__template_key=key).values_list(
                "execution__team_id", flat=True
            )
        )
    assignments = Assignment.objects.filter(template__template_key=key)
    teams |= set(assignments.filter(team__isnull=False).values_list("team_id", flat=True))
    protocols = set(assignments.filter(team__isnull=True).values_list("protocol_template_key", flat=True))
    if protocols and Execution is not None:
        teams |= set(Execution.objects.filter(protocol_template_key__in=protocols).values_list("team_id", flat=True))
    if not teams:
        creators = WorkflowTemplate.objects.filter(template_key=key, created_by__isnull=False).values("created_by_id")
        teams = set(
            Membership.objects.filter(user_id__in=creators, role__key__in=CURATOR_ROLES).values_list(
                "team_id", flat=True
            )
        )
    return teams.pop() if len(teams) == 1 else None


def assign_owners(apps, schema_editor):
    WorkflowTemplate = apps.get_model("governance", "WorkflowTemplate")
    Assignment = apps.get_model("governance", "WorkflowTemplateAssignment")
    Team = apps.get_model("governance", "Team")
    for key in sorted(set(WorkflowTemplate.objects.values_list("template_key", flat=True))):
        owner = _owner(apps, key)
        if owner is not None:
            WorkflowTemplate.objects.filter(template_key=key).update(team_id=owner)
    all_teams = list(Team.objects.order_by("id").values_list("id", flat=True))
    for legacy in Assignment.objects.filter(team__isnull=True).select_related("template").order_by("id"):
        owner = legacy.template.team_id
        for team_id in [owner] if owner is not None else all_teams:
            copy = Assignment.objects.create(
                template_id=legacy.template_id,
                team_id=team_id,
                protocol_template_key=legacy.protocol_template_key,
                created_by_id=legacy.created_by_id,
            )
            Assignment.objects.filter(pk=copy.pk).update(created_at=legacy.created_at)
        legacy.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0008_template_teams"),
    ]

    operations = [migrations.RunPython(assign_owners, migrations.RunPython.noop)]
