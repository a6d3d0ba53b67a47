from django.urls import path

from approvals.api import views

EXPORT = "experiment-console/sessions/<int:execution_id>/exports/narrative/<int:export_id>"

urlpatterns = [
    path(f"{EXPORT}/approvals", views.ExportApprovalsApi.as_view(), name="export-approvals"),
    path(f"{EXPORT}/approve", views.ExportApproveApi.as_view(), name="export-approve"),
    path(f"{EXPORT}/classification", views.ExportClassificationApi.as_view(), name="export-classification"),
    path(
        "experiment-console/sessions/<int:execution_id>/evidence/<int:evidence_id>/classification",
        views.EvidenceClassificationApi.as_view(),
        name="evidence-classification",
    ),
    path(f"{EXPORT}/stages/<int:stage_id>/delegate", views.StageDelegateApi.as_view(), name="stage-delegate"),
    path(f"{EXPORT}/stages/<int:stage_id>/reset", views.StageResetApi.as_view(), name="stage-reset"),
    path("experiments/<int:execution_id>/preview", views.ExecutionPreviewApi.as_view(), name="execution-preview"),
    path("governance/exports", views.GovernanceExportListApi.as_view(), name="governance-export-list"),
    path("auth/signature-certification", views.SignatureCertificationApi.as_view(), name="signature-certification"),
    path("governance/audit-reviews", views.AuditReviewListApi.as_view(), name="audit-review-list"),
    path("governance/audit-reviews/<int:review_id>", views.AuditReviewDetailApi.as_view(), name="audit-review"),
    path(
        "governance/audit-reviews/<int:review_id>/complete",
        views.AuditReviewCompleteApi.as_view(),
        name="audit-review-complete",
    ),
    path("governance/exports/<int:export_id>", views.GovernanceExportDetailApi.as_view(), name="governance-export"),
    path(
        "governance/exports/<int:export_id>/queue",
        views.GovernanceExportQueueApi.as_view(),
        name="governance-export-queue",
    ),
    path(
        "governance/exports/<int:export_id>/escalations",
        views.GovernanceExportEscalationsApi.as_view(),
        name="governance-export-escalations",
    ),
]
