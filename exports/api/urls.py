from django.urls import path

from exports.api import export_views, views

urlpatterns = [
    path("experiment-console/sessions", views.ExecutionListCreateApi.as_view(), name="execution-list"),
    path("experiment-console/sessions/<int:execution_id>", views.ExecutionDetailApi.as_view(), name="execution-detail"),
    path(
        "experiment-console/sessions/<int:execution_id>/events",
        views.ExecutionEventsApi.as_view(),
        name="execution-events",
    ),
    path(
        "experiment-console/sessions/<int:execution_id>/files",
        views.ExecutionFileUploadApi.as_view(),
        name="execution-files",
    ),
    path(
        "experiment-console/sessions/<int:execution_id>/overrides",
        views.ExecutionOverrideApi.as_view(),
        name="execution-overrides",
    ),
    path(
        "experiment-console/sessions/<int:execution_id>/coaching-notes",
        views.ExecutionCoachingNoteApi.as_view(),
        name="execution-coaching-notes",
    ),
    path(
        "experiment-console/sessions/<int:execution_id>/exports/narrative",
        export_views.ExportListCreateApi.as_view(),
        name="export-list",
    ),
    path(
        "experiment-console/sessions/<int:execution_id>/exports/narrative/<int:export_id>",
        export_views.ExportDetailApi.as_view(),
        name="export-detail",
    ),
    path(
        "experiment-console/sessions/<int:execution_id>/exports/narrative/<int:export_id>/artifact",
        export_views.ExportArtifactApi.as_view(),
        name="export-artifact",
    ),
    path(
        "experiment-console/sessions/<int:execution_id>/exports/narrative/<int:export_id>/artifact/rendition",
        export_views.ExportRenditionApi.as_view(),
        name="export-artifact-rendition",
    ),
    path(
        "experiment-console/sessions/<int:execution_id>/exports/narrative/<int:export_id>/artifact/link",
        export_views.ExportArtifactLinkApi.as_view(),
        name="export-artifact-link",
    ),
    path("experiment-console/exports/narrative/jobs", export_views.PackagingJobsApi.as_view(), name="packaging-jobs"),
    path(
        "exports/artifacts/download/<str:token>",
        export_views.ArtifactSignedDownloadApi.as_view(),
        name="artifact-signed-download",
    ),
    path(
        "experiment-console/sessions/<int:execution_id>/exports/narrative/<int:export_id>/artifact/timestamp",
        export_views.ExportArtifactTimestampApi.as_view(),
        name="export-artifact-timestamp",
    ),
    path("exports/signing-keys", export_views.SigningKeysApi.as_view(), name="signing-keys"),
    path("exports/tsa-certificates", export_views.TsaCertificatesApi.as_view(), name="tsa-certificates"),
    path("notebook/entries", views.NotebookEntryCreateApi.as_view(), name="notebook-entries"),
    path("notebook/entries/evidence", views.NotebookEvidenceListApi.as_view(), name="notebook-evidence"),
    path("data/evidence", views.EvidenceListCreateApi.as_view(), name="evidence-list"),
]
