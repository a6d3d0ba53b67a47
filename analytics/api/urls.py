from django.urls import path

from analytics.api import views

urlpatterns = [
    path("governance/analytics", views.GovernanceAnalyticsApi.as_view(), name="governance-analytics"),
]
