from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("", views.export_list, name="export-list"),
    path("executions/<int:execution_id>/preview", views.execution_preview, name="execution-preview"),
    path("<int:export_id>/", views.export_detail, name="export-detail"),
    path("<int:export_id>/sign", views.export_sign, name="export-sign"),
    path("<int:export_id>/stages/<int:stage_id>/delegate", views.stage_delegate_view, name="stage-delegate"),
    path("<int:export_id>/stages/<int:stage_id>/reset", views.stage_reset_view, name="stage-reset"),
]
