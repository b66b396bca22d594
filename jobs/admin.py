import logging

from celery import states
from django.contrib import admin, messages
from django.db.models import Q

from jobs import admin_beat
from jobs.models import Job
from jobs.retry import JobNotRetryable, job_retry
from jobs.selectors import PROGRESS, job_state, job_status
from jobs.services import JobNotCancellable, job_cancel

logger = logging.getLogger(__name__)

admin_beat.register()

FINAL = (states.SUCCESS, states.FAILURE, states.REVOKED)


class StateFilter(admin.SimpleListFilter):
    """The state the status API shows: the result's status, REVOKED once canceled, PENDING before any result."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(state, state) for state in (states.PENDING, states.STARTED, PROGRESS, states.RETRY, *FINAL)]

    def queryset(self, request, queryset):
        state = self.value()
        if not state:
            return queryset
        not_canceled = Q(canceled_at__isnull=True)
        if state == states.REVOKED:  # a job canceled while it ran, which then finished anyway, keeps its final state
            unfinished = Q(result__id__isnull=True) | ~Q(result__status__in=FINAL)
            canceled_unfinished = Q(canceled_at__isnull=False) & unfinished
            return queryset.filter(Q(result__status=states.REVOKED) | canceled_unfinished)
        if state == states.PENDING:
            return queryset.filter(Q(result__id__isnull=True) | Q(result__status=states.PENDING), not_canceled)
        if state in FINAL:
            return queryset.filter(result__status=state)
        return queryset.filter(not_canceled, result__status=state)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["task_id", "kind", "tenant", "user", "state", "accepted_at", "published_at", "canceled_at"]
    list_filter = ["kind", StateFilter, "tenant"]
    search_fields = ["task_id"]
    list_select_related = ["tenant", "user", "result"]
    date_hierarchy = "accepted_at"
    readonly_fields = [f.name for f in Job._meta.concrete_fields] + ["state", "error"]
    actions = ["retry_jobs", "cancel_jobs"]

    @admin.display(description="state")
    def state(self, job: Job) -> str:
        return job_state(job=job)

    @admin.display(description="error")
    def error(self, job: Job) -> str:
        return job_status(job=job)["error"] or ""

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Retry the selected failed jobs (as new jobs)", permissions=["change"])
    def retry_jobs(self, request, queryset):
        retried = 0
        for job in queryset.select_related("result"):
            try:
                new_job = job_retry(job=job, by_user_id=request.user.pk)
            except JobNotRetryable as exc:
                self.message_user(request, f"{job.task_id} not retried: {exc}", messages.WARNING)
                continue
            self.log_change(request, job, f"Retried as job {new_job.task_id}.")
            retried += 1
        if retried:
            self.message_user(request, f"{retried} job(s) retried.", messages.SUCCESS)

    @admin.action(description="Cancel the selected jobs (not started, or reports running)", permissions=["change"])
    def cancel_jobs(self, request, queryset):
        canceled = 0
        for job in queryset:
            try:
                job_cancel(job=job, by_user_id=request.user.pk)
            except JobNotCancellable as exc:
                self.message_user(request, f"{job.task_id} not canceled: {exc}", messages.WARNING)
                continue
            self.log_change(request, job, "Canceled.")
            canceled += 1
        if canceled:
            self.message_user(request, f"{canceled} job(s) canceled.", messages.SUCCESS)
