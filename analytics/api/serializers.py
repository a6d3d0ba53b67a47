from rest_framework import serializers


class AnalyticsQuery(serializers.Serializer):
    team = serializers.SlugField(required=False, max_length=63, help_text="Narrow to one of your teams.")
    window = serializers.RegexField(
        r"^\d{1,3}d?$", required=False, help_text="Days back from today (UTC), 1–90: `14` or `14d`. Default 14."
    )
