from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("governance/dashboard", views.dashboard, name="dashboard"),
    path("governance/dashboard/panels", views.dashboard_panels, name="dashboard-panels"),
    path(
        "governance/dashboard/exports/<int:export_id>/stages/<int:stage_id>/escalations",
        views.escalation_outcome,
        name="escalation-outcome",
    ),
    path("governance/reports", views.reports, name="reports"),
    path("governance/reports/feed/run", views.feed_run, name="feed-run"),
    path("governance/reports/feed/latest.ndjson", views.feed_latest_chunk, name="feed-latest-chunk"),
    path("metrics", views.metrics, name="metrics"),
]
