"""Request middleware of the governance app."""

from __future__ import annotations

import zoneinfo

from django.utils import timezone

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
