"""Page routes, mounted at /reports/ by config/urls.py."""

from django.urls import path

from reports import views

urlpatterns = [
    path("", views.report_list_page, name="report-list-page"),
    path("<int:report_id>/", views.report_page, name="report-page"),
    path("<int:report_id>/status/", views.report_status_json, name="report-page-status"),
    path("<int:report_id>/cancel/", views.report_cancel_page, name="report-page-cancel"),
    path("<int:report_id>/download/", views.report_download_page, name="report-page-download"),
    path("shared/<str:token>/", views.report_shared, name="report-shared"),
]
