"""Middleware shared by every page and endpoint."""

from __future__ import annotations

from django.http import Http404

# Ids are 64-bit signed integers in the database (BigAutoField); a larger one in a path names nothing.
MAX_ID = 2**63 - 1


class PathIdRangeMiddleware:
    """404 for an integer path parameter no row can have (``/sessions/99999999999999999999``), before the view
    hands it to the database, which would refuse to compare it (a 500). Applies to every URL pattern's ``int``
    converters."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        for value in (*view_args, *view_kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and not -MAX_ID - 1 <= value <= MAX_ID:
                raise Http404("No object has this id.")
        return None
