import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Template keys are unique per owner (a team, or the platform); every assignment names its team."""

    dependencies = [("governance", "0009_template_owners")]

    operations = [
        migrations.AlterField(
            model_name="workflowtemplateassignment",
            name="team",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="governance.team"
            ),
        ),
        migrations.AddConstraint(
            model_name="workflowtemplate",
            constraint=models.UniqueConstraint(
                condition=models.Q(("team__isnull", False)),
                fields=("team", "template_key", "version"),
                name="workflow_template_team_key_version_unique",
            ),
        ),
        migrations.AddConstraint(
            model_name="workflowtemplate",
            constraint=models.UniqueConstraint(
                condition=models.Q(("team__isnull", True)),
                fields=("template_key", "version"),
                name="workflow_template_platform_key_version_unique",
            ),
        ),
        migrations.AddConstraint(
            model_name="workflowtemplate",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_latest", True), ("team__isnull", False)),
                fields=("team", "template_key"),
                name="workflow_template_team_one_latest",
            ),
        ),
        migrations.AddConstraint(
            model_name="workflowtemplate",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_latest", True), ("team__isnull", True)),
                fields=("template_key",),
                name="workflow_template_platform_one_latest",
            ),
        ),
        migrations.AddConstraint(
            model_name="workflowtemplateassignment",
            constraint=models.UniqueConstraint(
                condition=models.Q(("protocol_template_key", "")),
                fields=("team",),
                name="template_assignment_one_per_team",
                violation_error_message="This team already has a template assignment; edit that one instead.",
            ),
        ),
        migrations.AddConstraint(
            model_name="workflowtemplateassignment",
            constraint=models.UniqueConstraint(
                condition=models.Q(("protocol_template_key", ""), _negated=True),
                fields=("team", "protocol_template_key"),
                name="template_assignment_one_per_team_protocol",
                violation_error_message="This protocol template already has an assignment in this team; edit that "
                "one instead.",
            ),
        ),
    ]
