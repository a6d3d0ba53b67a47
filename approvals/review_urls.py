from django.urls import path

from approvals import account_views

app_name = "reviews"

urlpatterns = [
    path("", account_views.audit_review_list, name="list"),
    path("<int:review_id>/", account_views.audit_review_detail, name="detail"),
    path("<int:review_id>/complete", account_views.audit_review_complete_view, name="complete"),
]
