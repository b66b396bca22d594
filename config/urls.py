from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularSwaggerView

from accounts import urls as accounts_urls
from jobs import urls as jobs_urls
from jobs.openapi import SchemaView
from jobs.views import healthz
from notifications import urls as notifications_urls
from reports import urls as reports_urls
from webhooks import urls as webhooks_urls

# One flat list, the hot paths first (a poll, then an enqueue): Django tries patterns in order, and each nested
# include is one more resolver to walk per request.
api_patterns = [
    *jobs_urls.urlpatterns,
    *notifications_urls.urlpatterns,
    *reports_urls.urlpatterns,
    *webhooks_urls.urlpatterns,
    *accounts_urls.urlpatterns,
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

urlpatterns = [
    path("api/", include(api_patterns)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("reports/", include("reports.page_urls")),
    path("", RedirectView.as_view(url="/reports/", permanent=False)),
]

# API clients get JSON for requests Django refuses, unknown paths (and, should it ever happen, a server error); pages
# keep Django's. With DEBUG on, Django skips handler404 for unmatched paths: jobs.middleware.ApiNotFoundMiddleware
# answers those under /api/.
handler400 = "jobs.views.bad_request"
handler404 = "jobs.views.not_found"
handler500 = "jobs.views.server_error"
