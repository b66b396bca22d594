from django.urls import path

from webhooks.api import FetchExternalDataView
from webhooks.views import webhook_receive

urlpatterns = [
    path("webhooks/<slug:source>/", webhook_receive, name="webhook-receive"),
    path("fetch-external-data/", FetchExternalDataView.as_view(), name="fetch-external-data"),
]
