"""Governance analytics API (docs/analytics.md). Parse, call the cached selector, return."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.api.serializers import AnalyticsOutput, AnalyticsQuery
from analytics.cache import governance_analytics_cached
from analytics.governance import analytics_scope
from config.api import validated
from config.schema import ErrorOutput


class GovernanceAnalyticsApi(APIView):
    """SLA accuracy, blocker trends, ladder load and guardrail forecasts over your teams.

    Cached for 30 seconds per viewer and team scope and invalidated as soon as an approval, delegation, reset,
    override or coaching note changes a team's state. ``cache.hit`` and ``cache.computed_at`` say whether the
    figures came from the cache and when they were computed (also sent as ``X-Cache: HIT|MISS``)."""

    @extend_schema(
        parameters=[AnalyticsQuery],
        responses={
            200: AnalyticsOutput,
            404: OpenApiResponse(ErrorOutput, description="`team_not_found`: `team` is not one of your teams."),
        },
    )
    def get(self, request):
        query = validated(AnalyticsQuery, request.query_params.dict(), query=True)
        scope = analytics_scope(user=request.user, team_slug=query.get("team"), window=query.get("window"))
        result = governance_analytics_cached(user=request.user, scope=scope)
        response = Response(AnalyticsOutput({**result.data, "cache": result.cache_info()}).data)
        response["X-Cache"] = "HIT" if result.hit else "MISS"
        response["Cache-Control"] = "private, no-store"
        return response
