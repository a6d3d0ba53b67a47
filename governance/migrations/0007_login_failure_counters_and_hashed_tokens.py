# API tokens move to django-rest-knox (hashed, expiring). The old plain-text tokens of DRF's authtoken app are
# dropped with their table: clients sign in again with POST /api/auth/token (README, Changelog).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0006_protect_snapshots_and_stage_rows'),
    ]

    operations = [
        migrations.CreateModel(
            name='LoginFailureCounter',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=200)),
                ('window_start', models.BigIntegerField(help_text='Start of the window, in seconds since the Unix epoch.')),
                ('attempts', models.PositiveIntegerField(default=0)),
            ],
            options={
                'db_table': 'governance_login_failure_counters',
                'indexes': [models.Index(fields=['window_start'], name='login_counter_window_idx')],
                'constraints': [models.UniqueConstraint(fields=('key', 'window_start'), name='login_counter_key_window')],
            },
        ),
        migrations.RunSQL(
            sql=[
                "DROP TABLE IF EXISTS authtoken_token",
                "DELETE FROM django_migrations WHERE app = 'authtoken'",
            ],
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
