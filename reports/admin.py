from django.contrib import admin

from reports.models import Report


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["id", "report_type", "tenant", "status", "page_count", "size_bytes", "created_at", "completed_at"]
    list_filter = ["report_type", "status", "tenant"]
    search_fields = ["job__task_id"]
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Report._meta.concrete_fields]

    def has_add_permission(self, request) -> bool:
        return False
