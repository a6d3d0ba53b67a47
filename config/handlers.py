"""Error pages: JSON in the API's error shape (docs/errors.md) under /api/, the designed pages (templates/404.html,
403.html, 500.html; docs/pages.md) elsewhere."""

from django.http import JsonResponse
from django.views import defaults

from config.api import error_body


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", f"No endpoint at {request.path}."), status=404)
    return defaults.page_not_found(request, exception)


def permission_denied(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("permission_denied", "You may not do this."), status=403)
    return defaults.permission_denied(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("server_error", "An unexpected error occurred; it has been logged."), status=500)
    return defaults.server_error(request)
