"""Filters shared by the apps' filter sets."""

from __future__ import annotations

import django_filters
from django import forms

from config.middleware import MAX_ID


class IdFilter(django_filters.NumberFilter):
    """An integer id (or sequence number) in a query string: a whole number within signed 64 bits, so that
    ``?execution=99999999999999999999`` or ``?execution=1e400`` is a 400 naming the parameter, never a query the
    database refuses (a 500)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", -MAX_ID - 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class BoolFilter(django_filters.TypedChoiceFilter):
    """``true`` or ``false`` in a query string, as an OpenAPI boolean is written; anything else (``null``,
    ``yes``, ``1``) is a 400 rather than "no filter"."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", [("true", "true"), ("false", "false")])
        kwargs.setdefault("coerce", lambda value: value == "true")
        super().__init__(*args, **kwargs)
