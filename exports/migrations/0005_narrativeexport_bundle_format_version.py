from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("exports", "0004_exportartifact_format_version"),
    ]

    operations = [
        migrations.AddField(
            model_name="narrativeexport",
            name="bundle_format_version",
            field=models.PositiveSmallIntegerField(default=2),
        ),
    ]
