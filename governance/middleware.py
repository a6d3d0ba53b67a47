"""Request middleware of the governance app."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from governance.passwords import password_expired
from governance.selectors.preferences import viewer_time_zone


class ViewerTimeZoneMiddleware:
    """Pages show times in the viewer's zone (docs/pages.md); the API exchanges UTC and is left in UTC."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/") or not request.user.is_authenticated:
            return self.get_response(request)
        request.time_zone = viewer_time_zone(user=request.user)
        with timezone.override(zoneinfo.ZoneInfo(request.time_zone)):
            return self.get_response(request)


class PasswordExpiryMiddleware:
    """A signed-in user whose password has aged out (``DOSSIER_PASSWORD_MAX_AGE_DAYS``) is sent to the password
    change page from every page but that one and sign-out (docs/authentication.md); the API answers 403
    ``password_expired`` instead (governance.permissions.PasswordCurrent)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.DOSSIER_PASSWORD_MAX_AGE_DAYS or request.path.startswith(("/api/", "/static/")):
            return self.get_response(request)
        if not request.user.is_authenticated or request.path in {reverse("password-change"), reverse("logout")}:
            return self.get_response(request)
        if password_expired(user=request.user):
            messages.warning(request, "Your password has expired: choose a new one to continue.")
            return redirect("password-change")
        return self.get_response(request)
