"""Filters shared by the governance API and admin-facing reads."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet

from config.errors import ValidationFailed
from config.filters import BoolFilter, IdFilter
from governance.choices import BaselineStatus, TemplateStatus
from governance.models import GovernanceBaseline, WorkflowTemplate


def filtered(filterset_class: type[django_filters.FilterSet], data: Any, queryset: QuerySet) -> QuerySet:
    """Apply a FilterSet; a bad filter value is a 400, never silently ignored."""
    filterset = filterset_class(data or {}, queryset)
    if not filterset.is_valid():
        raise ValidationFailed("Invalid filter.", code="invalid_filter", details={"fields": filterset.errors})
    return filterset.qs


class TemplateFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=TemplateStatus.choices)
    key = django_filters.CharFilter(field_name="template_key")
    team = django_filters.CharFilter(field_name="team__slug", label="Team slug (templates that team owns)")
    include_all = BoolFilter(method="filter_include_all", label="Every version, not only the latest")

    class Meta:
        model = WorkflowTemplate
        fields = ["status", "key", "team", "include_all"]

    def filter_include_all(self, queryset, name, value):
        return queryset

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        if not self.form.cleaned_data.get("include_all"):
            queryset = queryset.filter(is_latest=True)
        return queryset


class BaselineFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=BaselineStatus.choices)
    team = django_filters.CharFilter(field_name="team__slug")
    protocol_template = django_filters.CharFilter(field_name="protocol_template_key")
    execution = IdFilter(field_name="execution_id")
    is_current = BoolFilter()

    class Meta:
        model = GovernanceBaseline
        fields = ["status", "team", "protocol_template", "execution", "is_current"]
