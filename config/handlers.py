"""Error pages: JSON in docs/errors.md's shape under /api/, HTML elsewhere."""

from django.http import JsonResponse
from django.views import defaults

from config.api import error_body


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", f"No endpoint at {request.path}."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("server_error", "An unexpected error occurred; it has been logged."), status=500)
    return defaults.server_error(request)
