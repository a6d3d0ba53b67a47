from django.urls import path

from governance.api import audit_views, views

urlpatterns = [
    path("auth/token", views.TokenApi.as_view(), name="auth-token"),
    path("auth/logout", views.LogoutApi.as_view(), name="auth-logout"),
    path("auth/password", views.PasswordChangeApi.as_view(), name="auth-password"),
    path(
        "governance/teams/<slug:slug>/members/<str:username>/clearance",
        views.MemberClearanceApi.as_view(),
        name="member-clearance",
    ),
    path(
        "governance/teams/<slug:slug>/clearance-policy",
        views.TeamClearancePolicyApi.as_view(),
        name="team-clearance-policy",
    ),
    path("governance/audit-events", audit_views.AuditEventsApi.as_view(), name="audit-events"),
    path("governance/templates", views.TemplateListCreateApi.as_view(), name="template-list"),
    path("governance/templates/<int:template_id>", views.TemplateDetailApi.as_view(), name="template-detail"),
    path("governance/templates/<int:template_id>/publish", views.TemplatePublishApi.as_view(), name="template-publish"),
    path("governance/templates/<int:template_id>/archive", views.TemplateArchiveApi.as_view(), name="template-archive"),
    path(
        "governance/templates/<int:template_id>/assignments",
        views.TemplateAssignmentsApi.as_view(),
        name="template-assignments",
    ),
    path("governance/assignments/<int:assignment_id>", views.AssignmentDetailApi.as_view(), name="assignment-detail"),
    path("governance/baselines", views.BaselineListCreateApi.as_view(), name="baseline-list"),
    path("governance/baselines/<int:baseline_id>", views.BaselineDetailApi.as_view(), name="baseline-detail"),
    path("governance/baselines/<int:baseline_id>/approve", views.BaselineApproveApi.as_view(), name="baseline-approve"),
    path("governance/baselines/<int:baseline_id>/reject", views.BaselineRejectApi.as_view(), name="baseline-reject"),
    path("governance/baselines/<int:baseline_id>/publish", views.BaselinePublishApi.as_view(), name="baseline-publish"),
    path(
        "governance/baselines/<int:baseline_id>/rollback",
        views.BaselineRollbackApi.as_view(),
        name="baseline-rollback",
    ),
]
