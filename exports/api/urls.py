from django.urls import path

from exports.api import views

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
    path("notebook/entries", views.NotebookEntryCreateApi.as_view(), name="notebook-entries"),
    path("notebook/entries/evidence", views.NotebookEvidenceListApi.as_view(), name="notebook-evidence"),
    path("data/evidence", views.EvidenceListCreateApi.as_view(), name="evidence-list"),
]
