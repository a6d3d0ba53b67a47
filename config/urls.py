from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import views
from governance.forms import AdminLoginForm
from governance.views import LoginView, password_change_page, preferences

admin.site.login_form = AdminLoginForm  # the admin's password door shares the guessing limit
admin.site.site_header = "Dossier administration"
admin.site.site_title = "Dossier admin"
admin.site.index_title = "Teams, ladders, templates and the audit trail"
admin.site.site_url = "/"

api_patterns: list[URLPattern | URLResolver] = [
    path("", include("governance.api.urls")),
    path("", include("exports.api.urls")),
    path("", include("approvals.api.urls")),
    path("", include("analytics.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
]

urlpatterns = [
    path("", views.home, name="home"),
    # Browsers ask for /favicon.ico on pages that name no icon (admin, browsable API); a 404 there is console noise.
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/preferences/", preferences, name="preferences"),
    path("accounts/password/", password_change_page, name="password-change"),
    path("account/", include("approvals.account_urls")),
    path("audit-reviews/", include("approvals.review_urls")),
    path("admin/", admin.site.urls),
    path("exports/", include("approvals.urls")),
    path("executions/", include("approvals.execution_urls")),
    path("", include("analytics.urls")),
    path("api/", include(api_patterns)),
]

handler403 = "config.handlers.permission_denied"
handler404 = "config.handlers.not_found"
handler500 = "config.handlers.server_error"
