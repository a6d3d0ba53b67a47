from django.urls import path

from governance.api import views

urlpatterns = [
    path("auth/token", views.TokenApi.as_view(), name="auth-token"),
]
