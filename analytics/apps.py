from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        from analytics.signals import team_state_changed_receiver
        from governance.signals import team_state_changed

        team_state_changed.connect(team_state_changed_receiver, dispatch_uid="analytics.invalidate")
