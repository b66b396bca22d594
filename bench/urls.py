"""The project's URLs plus the bare and stock baselines under /bench/ (mounted only by bench.settings)."""

from django.urls import path

from bench.bare import BareEnqueueView, BareStatusView, StockEnqueueView, StockStatusView
from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("bench/bare-enqueue/", BareEnqueueView.as_view()),
    path("bench/bare-status/<str:task_id>/", BareStatusView.as_view()),
    path("bench/stock-enqueue/", StockEnqueueView.as_view()),
    path("bench/stock-status/<str:task_id>/", StockStatusView.as_view()),
    *project_urlpatterns,
]
