from django.contrib import admin

from jobs.models import Job
from jobs.selectors import job_state


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["task_id", "kind", "tenant", "user", "state", "accepted_at", "published_at", "canceled_at"]
    list_filter = ["kind", "tenant"]
    search_fields = ["task_id"]
    list_select_related = ["tenant", "user", "result"]
    date_hierarchy = "accepted_at"
    readonly_fields = [f.name for f in Job._meta.concrete_fields]

    @admin.display(description="state")
    def state(self, job: Job) -> str:
        return job_state(job=job)

    def has_add_permission(self, request) -> bool:
        return False
