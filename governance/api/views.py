"""Governance endpoints (docs/teams-and-roles.md, docs/templates-and-baselines.md). Parse, call one service or selector,
serialize."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from knox.models import AuthToken
from rest_framework import generics, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import validated
from config.errors import ValidationFailed
from config.schema import ErrorOutput
from governance.api import serializers as s
from governance.models import WorkflowTemplateAssignment
from governance.selectors.baselines import baseline_get_for_user, baselines_for_user
from governance.selectors.teams import team_get_for_user
from governance.selectors.templates import (
    assignment_get_for_user,
    assignment_team_for_user,
    assignments_for_template,
    template_get,
    templates_for_user,
)
from governance.services.baselines import (
    baseline_approve,
    baseline_publish,
    baseline_reject,
    baseline_rollback,
    baseline_submit,
)
from governance.services.clearance import clearance_get, clearance_policy_get, clearance_policy_set, clearance_set
from governance.services.passwords import password_change
from governance.services.templates import (
    RECORDS_FIELDS,
    assignment_delete,
    template_archive,
    template_assign,
    template_create,
    template_publish,
)
from governance.services.tokens import token_issue, token_revoke

TEMPLATE_CONFLICT = OpenApiResponse(
    ErrorOutput,
    description="The template's state does not allow it: `template_not_draft`, `template_archived`, "
    "`template_version_conflict`, `team_required` (a platform template is assigned to a named team), "
    "`assignment_conflict`, `template_content_conflict` (fields given do not fit the content taken from the source "
    "template, e.g. permitted roles that leave out a role its stages need).",
)
BASELINE_CONFLICT = OpenApiResponse(
    ErrorOutput,
    description="The baseline's state does not allow it: `baseline_invalid_transition`, `baseline_current_conflict`, "
    "`baseline_not_current`.",
)


class TokenApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=s.TokenInput,
        responses={
            200: s.TokenOutput,
            400: OpenApiResponse(s.AuthErrorOutput, description="Malformed body or missing fields."),
            401: OpenApiResponse(s.AuthErrorOutput, description="`invalid_credentials`: wrong username or password."),
            429: OpenApiResponse(
                s.TooManyAttemptsOutput,
                description="`too_many_attempts`: the guessing limit for this username and client address, or for "
                "the client address, is reached. The `Retry-After` header gives the same seconds as "
                "`details.retry_after_seconds`.",
            ),
            503: OpenApiResponse(
                s.TooManyAttemptsOutput,
                description="`busy`: every password-hash slot stayed taken; nothing was counted. Retry after "
                '`Retry-After` seconds (docs/authentication.md, "Password hashing").',
            ),
        },
        auth=[],
    )
    def post(self, request):
        data = validated(s.TokenInput, request.data)
        token, text = token_issue(request=request, username=data["username"], password=data["password"])
        return Response(s.TokenOutput({"token": text, "expiry": token.expiry}).data)


class LogoutApi(APIView):
    permission_classes = [IsAuthenticated]  # also with an expired password

    @extend_schema(
        request=None,
        responses={
            204: OpenApiResponse(description="The token this request was made with is revoked."),
            400: OpenApiResponse(
                s.AuthErrorOutput, description="`not_token_authenticated`: the request did not use an API token."
            ),
            401: OpenApiResponse(s.AuthErrorOutput, description="No valid token."),
            403: OpenApiResponse(s.AuthErrorOutput, description="A session-authenticated request without CSRF token."),
        },
    )
    def post(self, request):
        if not isinstance(request.auth, AuthToken):
            raise ValidationFailed(
                "This request was not made with an API token; browsers sign out at /accounts/logout/.",
                code="not_token_authenticated",
            )
        token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordChangeApi(APIView):
    """Change one's own password (docs/authentication.md, "Password aging and reuse"): the one thing a user with an
    expired password may do besides logging out. Every API token of the user stops working, this one included."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=s.PasswordChangeInput,
        responses={
            204: OpenApiResponse(description="Changed; every API token of the user is revoked."),
            400: OpenApiResponse(
                ErrorOutput,
                description="`password_refused` (too short, too common, or one of the last "
                "`DOSSIER_PASSWORD_HISTORY`; `details.new_password`).",
            ),
            403: OpenApiResponse(ErrorOutput, description="`invalid_password`: the current password does not match."),
            429: OpenApiResponse(s.TooManyAttemptsOutput, description="`too_many_attempts`: the guessing limit."),
        },
    )
    def post(self, request):
        data = validated(s.PasswordChangeInput, request.data)
        password_change(request=request, user=request.user, **data)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _detail(request, template_id: int) -> dict:
    return s.TemplateDetailOutput(template_get(template_id=template_id, user=request.user)).data


class TemplateListCreateApi(generics.ListAPIView):
    serializer_class = s.TemplateOutput

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=["draft", "published", "archived"]),
            OpenApiParameter("key", str),
            OpenApiParameter("team", str, description="Team slug: templates that team owns (among those you may see)."),
            OpenApiParameter("include_all", bool, description="Every version instead of only the latest."),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return templates_for_user(user=self.request.user, filters=self.request.query_params)

    @extend_schema(request=s.TemplateInput, responses={201: s.TemplateDetailOutput, 409: TEMPLATE_CONFLICT})
    def post(self, request):
        data = validated(s.TemplateInput, request.data)
        forked_from_id = data.pop("forked_from_id")
        source = template_get(template_id=forked_from_id, user=request.user) if forked_from_id else None
        if "team" in data:
            slug = data.pop("team")
            team = team_get_for_user(user=request.user, slug=slug) if slug else None
        else:
            team = source.team if source else None
        records = {field: data.pop(field) for field in RECORDS_FIELDS if field in data}
        template = template_create(actor=request.user, team=team, forked_from=source, records=records, **data)
        return Response(_detail(request, template.pk), status=status.HTTP_201_CREATED)


class TemplateDetailApi(APIView):
    @extend_schema(responses=s.TemplateDetailOutput)
    def get(self, request, template_id: int):
        return Response(_detail(request, template_id))


class TemplatePublishApi(APIView):
    @extend_schema(request=None, responses={200: s.TemplateDetailOutput, 409: TEMPLATE_CONFLICT})
    def post(self, request, template_id: int):
        template_publish(template=template_get(template_id=template_id, user=request.user), actor=request.user)
        return Response(_detail(request, template_id))


class TemplateArchiveApi(APIView):
    @extend_schema(request=None, responses={200: s.TemplateDetailOutput, 409: TEMPLATE_CONFLICT})
    def post(self, request, template_id: int):
        template_archive(template=template_get(template_id=template_id, user=request.user), actor=request.user)
        return Response(_detail(request, template_id))


class TemplateAssignmentsApi(generics.ListAPIView):
    serializer_class = s.AssignmentOutput

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return WorkflowTemplateAssignment.objects.none()
        template = template_get(template_id=self.kwargs["template_id"], user=self.request.user)
        return assignments_for_template(template=template, user=self.request.user)

    @extend_schema(
        request=s.AssignmentInput,
        responses={200: s.AssignmentOutput, 201: s.AssignmentOutput, 409: TEMPLATE_CONFLICT},
    )
    def post(self, request, template_id: int):
        template = template_get(template_id=template_id, user=request.user)
        data = validated(s.AssignmentInput, request.data)
        team = assignment_team_for_user(user=request.user, template=template, slug=data["team"])
        assignment, created = template_assign(
            template=template, actor=request.user, team=team, protocol_template_key=data["protocol_template"]
        )
        return Response(
            s.AssignmentOutput(assignment).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class AssignmentDetailApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request, assignment_id: int):
        assignment_delete(
            assignment=assignment_get_for_user(assignment_id=assignment_id, user=request.user), actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class BaselineListCreateApi(generics.ListAPIView):
    serializer_class = s.BaselineOutput

    def get_queryset(self):
        return baselines_for_user(user=self.request.user, filters=self.request.query_params)

    @extend_schema(request=s.BaselineInput, responses={201: s.BaselineDetailOutput})
    def post(self, request):
        data = validated(s.BaselineInput, request.data)
        baseline = baseline_submit(actor=request.user, **data)
        return Response(_baseline(request, baseline.pk), status=status.HTTP_201_CREATED)


def _baseline(request, baseline_id: int) -> dict:
    return s.BaselineDetailOutput(baseline_get_for_user(user=request.user, baseline_id=baseline_id)).data


class BaselineDetailApi(APIView):
    @extend_schema(responses=s.BaselineDetailOutput)
    def get(self, request, baseline_id: int):
        return Response(_baseline(request, baseline_id))


class BaselineApproveApi(APIView):
    @extend_schema(request=s.BaselineDecisionInput, responses={200: s.BaselineDetailOutput, 409: BASELINE_CONFLICT})
    def post(self, request, baseline_id: int):
        data = validated(s.BaselineDecisionInput, request.data)
        baseline_approve(baseline_id=baseline_id, actor=request.user, comment=data["comment"])
        return Response(_baseline(request, baseline_id))


class BaselineRejectApi(APIView):
    @extend_schema(request=s.BaselineDecisionInput, responses={200: s.BaselineDetailOutput, 409: BASELINE_CONFLICT})
    def post(self, request, baseline_id: int):
        data = validated(s.BaselineDecisionInput, request.data)
        baseline_reject(baseline_id=baseline_id, actor=request.user, comment=data["comment"])
        return Response(_baseline(request, baseline_id))


class BaselinePublishApi(APIView):
    @extend_schema(request=None, responses={200: s.BaselineDetailOutput, 409: BASELINE_CONFLICT})
    def post(self, request, baseline_id: int):
        baseline_publish(baseline_id=baseline_id, actor=request.user)
        return Response(_baseline(request, baseline_id))


class BaselineRollbackApi(APIView):
    @extend_schema(request=s.BaselineRollbackInput, responses={200: s.BaselineDetailOutput, 409: BASELINE_CONFLICT})
    def post(self, request, baseline_id: int):
        data = validated(s.BaselineRollbackInput, request.data)
        baseline_rollback(baseline_id=baseline_id, actor=request.user, **data)
        return Response(_baseline(request, baseline_id))


class MemberClearanceApi(APIView):
    """A member's clearance in a team: the highest classification they may read there (docs/clearance.md). Roles
    ``admin`` and ``compliance`` of the team; changes are audited as ``governance.clearance_changed``."""

    @extend_schema(responses=s.ClearanceOutput)
    def get(self, request, slug: str, username: str):
        team = team_get_for_user(user=request.user, slug=slug)
        return Response(s.ClearanceOutput(clearance_get(team=team, username=username, actor=request.user)).data)

    @extend_schema(request=s.ClearanceInput, responses=s.ClearanceOutput)
    def put(self, request, slug: str, username: str):
        team = team_get_for_user(user=request.user, slug=slug)
        data = validated(s.ClearanceInput, request.data)
        result = clearance_set(team=team, username=username, level=data["level"], actor=request.user)
        return Response(s.ClearanceOutput(result).data)


class TeamClearancePolicyApi(APIView):
    """What a team does above a member's clearance: ``deny`` (metadata only) or ``redact`` (evidence above the
    clearance withheld from the narrative); docs/clearance.md. Roles ``admin`` and ``compliance`` of the team;
    changes are audited as ``governance.clearance_policy_changed``."""

    @extend_schema(responses=s.ClearancePolicyOutput)
    def get(self, request, slug: str):
        team = team_get_for_user(user=request.user, slug=slug)
        return Response(s.ClearancePolicyOutput(clearance_policy_get(team=team, actor=request.user)).data)

    @extend_schema(request=s.ClearancePolicyInput, responses=s.ClearancePolicyOutput)
    def put(self, request, slug: str):
        team = team_get_for_user(user=request.user, slug=slug)
        data = validated(s.ClearancePolicyInput, request.data)
        result = clearance_policy_set(team=team, policy=data["policy"], actor=request.user)
        return Response(s.ClearancePolicyOutput(result).data)
