from django.urls import path

from notifications.api import SendEmailView

urlpatterns = [
    path("send-email/", SendEmailView.as_view(), name="send-email"),
]
