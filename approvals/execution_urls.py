from django.urls import path

from approvals import execution_views as views

app_name = "executions"

urlpatterns = [
    path("<int:execution_id>/", views.execution_detail, name="detail"),
    path("<int:execution_id>/notebook", views.notebook_entry_add, name="notebook-add"),
    path("<int:execution_id>/evidence", views.evidence_upload, name="evidence-upload"),
    path("<int:execution_id>/exports/new", views.export_new, name="export-new"),
]
