from django.urls import path

from approvals import account_views

app_name = "account"

urlpatterns = [
    path("signature-certification", account_views.signature_certification, name="signature-certification"),
]
