from django.conf import settings
from rest_framework import serializers


def window_pattern(max_days: int) -> str:
    """Exactly the windows ``parse_window`` takes: 1 to ``max_days``, optionally followed by ``d``, so the schema
    names every value the API accepts (docs/api-schema.md)."""
    return rf"^({'|'.join(str(day) for day in range(max_days, 0, -1))})d?$"


class AnalyticsQuery(serializers.Serializer):
    team = serializers.SlugField(required=False, max_length=63, help_text="Narrow to one of your teams.")
    window = serializers.RegexField(
        window_pattern(settings.ANALYTICS_MAX_WINDOW_DAYS),
        required=False,
        help_text=f"Days back from today (UTC), 1–{settings.ANALYTICS_MAX_WINDOW_DAYS}: `14` or `14d`. Default 14.",
    )


class AnalyticsScopeOutput(serializers.Serializer):
    teams = serializers.ListField(child=serializers.CharField())
    window_days = serializers.IntegerField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()


class AnalyticsCacheOutput(serializers.Serializer):
    hit = serializers.BooleanField()
    computed_at = serializers.DateTimeField()
    age_seconds = serializers.FloatField()
    ttl_seconds = serializers.IntegerField()


class RedactionOutput(serializers.Serializer):
    """Exports created in the window and what redaction removed from them (docs/redaction.md)."""

    exports = serializers.IntegerField()
    exports_with_redactions = serializers.IntegerField()
    share_of_exports_with_redactions = serializers.FloatField(allow_null=True)
    counts_by_type = serializers.DictField(child=serializers.IntegerField())
    redactions = serializers.IntegerField()
    exports_without_redaction = serializers.IntegerField()
    alert_share = serializers.FloatField()
    over_alert = serializers.BooleanField()


class AnalyticsOutput(serializers.Serializer):
    """The figure families (docs: README "Governance analytics"); each is an object of named figures."""

    scope = AnalyticsScopeOutput()
    computed_at = serializers.DateTimeField()
    sla_accuracy = serializers.DictField()
    blocker_trends = serializers.DictField()
    ladder_load = serializers.DictField()
    guardrail_forecasts = serializers.DictField()
    redaction = RedactionOutput()
    cache = AnalyticsCacheOutput()
