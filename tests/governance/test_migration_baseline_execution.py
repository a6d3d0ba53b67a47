"""Governance 0013: a database created while a baseline's execution was a foreign key into exports keeps every
baseline and its execution id, and loses only the constraint (docs/architecture.md, "Where baselines live")."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from governance.models import GovernanceBaseline

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BEFORE = ("governance", "0012_stage_reject_meaning")
LEGACY_CONSTRAINT = "governance_baselines_execution_id_legacy_fk"


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest_targets():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def execution_foreign_keys() -> list[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "governance_baselines")
    return [name for name, c in constraints.items() if c["foreign_key"] and c["columns"] == ["execution_id"]]


def test_the_legacy_foreign_key_is_dropped_and_baselines_keep_their_execution():
    try:
        apps = migrate([BEFORE, *(node for node in latest_targets() if node[0] != "governance")])
        Execution = apps.get_model("exports", "Execution")
        with connection.cursor() as cursor:
            # What 0005 used to create: a foreign key from the baseline to the exports app's execution.
            cursor.execute(
                f"ALTER TABLE governance_baselines ADD CONSTRAINT {LEGACY_CONSTRAINT} FOREIGN KEY (execution_id) "
                f"REFERENCES {Execution._meta.db_table} (id) DEFERRABLE INITIALLY DEFERRED"
            )
        team = apps.get_model("governance", "Team").objects.create(slug="alpha", name="Alpha")
        user = apps.get_model("auth", "User").objects.create(username="old-scientist")
        execution = Execution.objects.create(team=team, title="Run", owner=user, protocol_template_key="assay")
        baseline = apps.get_model("governance", "GovernanceBaseline").objects.create(
            team=team,
            execution_id=execution.pk,
            protocol_template_key="assay",
            title="Reference",
            status="submitted",
            submitted_by=user,
        )
        assert execution_foreign_keys() == [LEGACY_CONSTRAINT]

        migrate(latest_targets())

        assert execution_foreign_keys() == []
        kept = GovernanceBaseline.objects.get(pk=baseline.pk)
        assert (kept.execution_id, kept.title, kept.protocol_template_key) == (execution.pk, "Reference", "assay")
    finally:
        migrate(latest_targets())
