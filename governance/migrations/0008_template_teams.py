import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Templates get an owning team (null: a platform template); snapshots record their format version.

    Existing snapshots are format 1 (their canonical content and stored hash are untouched: adding a column with a
    constant default rewrites no row, so the append-only trigger never fires). New snapshots are format 2.
    """

    dependencies = [("governance", "0007_login_failure_counters_and_hashed_tokens")]

    operations = [
        migrations.RemoveConstraint(model_name="workflowtemplate", name="workflow_template_key_version_unique"),
        migrations.RemoveConstraint(model_name="workflowtemplate", name="workflow_template_one_latest"),
        migrations.RemoveConstraint(model_name="workflowtemplateassignment", name="template_assignment_one_target"),
        migrations.RemoveConstraint(model_name="workflowtemplateassignment", name="template_assignment_one_per_team"),
        migrations.RemoveConstraint(
            model_name="workflowtemplateassignment", name="template_assignment_one_per_protocol"
        ),
        migrations.AddField(
            model_name="workflowtemplate",
            name="team",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="workflow_templates",
                to="governance.team",
            ),
        ),
        migrations.AddField(
            model_name="workflowtemplatesnapshot",
            name="format_version",
            field=models.PositiveSmallIntegerField(default=1),
        ),
        migrations.AlterField(
            model_name="workflowtemplatesnapshot",
            name="format_version",
            field=models.PositiveSmallIntegerField(default=2),
        ),
    ]
