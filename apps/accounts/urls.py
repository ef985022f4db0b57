from django.urls import path

from apps.accounts import views

app_name = "accounts"

urlpatterns = [
    path("otp/verify/", views.otp_verify, name="otp-verify"),
    path("otp/enrol/", views.otp_enrol, name="otp-enrol"),
    path("otp/backup-codes/", views.backup_codes, name="otp-backup-codes"),
]
