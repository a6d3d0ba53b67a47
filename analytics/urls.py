from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("governance/dashboard", views.dashboard, name="dashboard"),
    path("governance/dashboard/panels", views.dashboard_panels, name="dashboard-panels"),
    path("governance/reports", views.reports, name="reports"),
    path("metrics", views.metrics, name="metrics"),
]
