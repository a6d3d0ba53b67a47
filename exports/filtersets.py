import django_filters

from config.filters import BoolFilter, IdFilter
from exports.choices import EvidenceKind, LegalHoldScope
from exports.models import Evidence, Execution, ExecutionEvent, LegalHold


class ExecutionFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")
    protocol_template = django_filters.CharFilter(field_name="protocol_template_key")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    title = django_filters.CharFilter(field_name="title", lookup_expr="icontains")

    class Meta:
        model = Execution
        fields = ["team", "status", "protocol_template", "owner"]


class ExecutionEventFilterSet(django_filters.FilterSet):
    after_sequence = IdFilter(field_name="sequence", lookup_expr="gt")
    event_type = django_filters.CharFilter(field_name="event_type")
    event_type_prefix = django_filters.CharFilter(field_name="event_type", lookup_expr="startswith")
    occurred_after = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")

    class Meta:
        model = ExecutionEvent
        fields = ["event_type", "actor"]


class EvidenceFilterSet(django_filters.FilterSet):
    execution = IdFilter(field_name="execution_id", required=True)
    kind = django_filters.ChoiceFilter(choices=EvidenceKind.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Evidence
        fields = ["execution", "kind", "classification"]


class LegalHoldFilterSet(django_filters.FilterSet):
    """Filters of the legal-hold list (API and admin): team slug, scope, export, active or released."""

    team = django_filters.CharFilter(field_name="team__slug")
    scope = django_filters.ChoiceFilter(choices=LegalHoldScope.choices)
    export = IdFilter(field_name="export_id")
    active = BoolFilter(method="filter_active", label="Only active (true) or only released (false) holds")

    class Meta:
        model = LegalHold
        fields = ["team", "scope", "export", "active"]

    def filter_active(self, queryset, name, value):
        return queryset.filter(released_at__isnull=value)
