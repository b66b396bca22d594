"""The periodic-task admin, hardened: only superusers change schedules, tasks are chosen from this project's
registered tasks, arguments must be JSON of the right shape, and every change (actions too) is in the admin log.

Registered in place of django-celery-beat's own admin (imported by jobs/admin.py). Saving a PeriodicTask or a
schedule marks ``PeriodicTasks.changed``; beat's DatabaseScheduler notices within its max interval and reloads,
so an edit takes effect without a restart.
"""

import json

from celery import current_app
from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule


def project_task_choices() -> list[tuple[str, str]]:
    """This project's registered task names (Celery's own ``celery.*`` internals excluded)."""
    current_app.loader.import_default_modules()
    names = sorted(name for name in current_app.tasks if not name.startswith("celery."))
    return [("", "---------"), *((name, name) for name in names)]


class WritesByPermissionMixin:
    """Staff may look; writing (add, change, delete, the list actions) takes a superuser, or a staff member a
    superuser granted the model's Django permission (directly or through a group).

    Staff are also a tenant's admins (they get the renewal emails), so being staff alone grants no writes: schedules
    run for every tenant.
    """

    @staticmethod
    def _staff(request) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request) -> bool:
        return self._staff(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._staff(request)

    def has_add_permission(self, request, *args) -> bool:
        return self._staff(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._staff(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._staff(request) and super().has_delete_permission(request, obj)

    def get_actions(self, request):
        return super().get_actions(request) if self.has_change_permission(request) else {}


class PeriodicTaskForm(beat_admin.PeriodicTaskForm):
    regtask = None  # one field, a choice of registered tasks, instead of "registered" plus free text
    task = forms.TypedChoiceField(label=_("Task"), choices=project_task_choices)

    def clean(self):
        data = forms.ModelForm.clean(self)
        if data.get("expire_seconds") is not None and data.get("expires"):
            raise forms.ValidationError(_("Only one can be set, in expires and expire_seconds"))
        return data

    def _clean_json_of(self, field: str, kind: type, words: str) -> str:
        value = self.cleaned_data.get(field) or ("[]" if kind is list else "{}")
        try:
            parsed = json.loads(value, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise forms.ValidationError(_("Not valid JSON: %(error)s"), params={"error": exc}) from exc
        if not isinstance(parsed, kind):
            raise forms.ValidationError(_("Must be a JSON %(words)s."), params={"words": words})
        try:
            return json.dumps(parsed, allow_nan=False)
        except ValueError as exc:  # a number too large for a float (1e400) reads as Infinity
            raise forms.ValidationError(_("Not valid JSON: %(error)s"), params={"error": exc}) from exc

    def clean_args(self) -> str:
        return self._clean_json_of("args", list, 'list, e.g. [] or ["2026-11-23"]')

    def clean_kwargs(self) -> str:
        return self._clean_json_of("kwargs", dict, 'object, e.g. {} or {"day": "2026-11-23"}')

    def clean_headers(self) -> str:
        # Beat skips, without a word, a schedule whose headers it cannot read: it would look enabled and never run.
        return self._clean_json_of("headers", dict, 'object, e.g. {} or {"priority": 5}')


def _refuse_constant(name: str):
    """NaN and Infinity: Python's json reads them, but they are not JSON, and a task's arguments would not survive
    the trip through the broker."""
    raise ValueError(f"{name} is not a JSON value")


class PeriodicTaskAdmin(WritesByPermissionMixin, beat_admin.PeriodicTaskAdmin):
    form = PeriodicTaskForm
    list_display = ("name", "task", "enabled", "scheduler", "last_run_at", "total_run_count", "one_off")
    fieldsets = tuple(
        (title, {**options, "fields": tuple(name for name in options["fields"] if name != "regtask")})
        for title, options in beat_admin.PeriodicTaskAdmin.fieldsets
    )

    def _log_each(self, request, queryset, message: str) -> None:
        for task in queryset:
            self.log_change(request, task, message)

    # The package's actions update in bulk, which the admin log would not see.
    @admin.action(description=_("Enable selected tasks"))
    def enable_tasks(self, request, queryset):
        super().enable_tasks(request, queryset)
        self._log_each(request, queryset, "Enabled.")

    @admin.action(description=_("Disable selected tasks"))
    def disable_tasks(self, request, queryset):
        super().disable_tasks(request, queryset)
        self._log_each(request, queryset, "Disabled.")

    @admin.action(description=_("Toggle activity of selected tasks"))
    def toggle_tasks(self, request, queryset):
        super().toggle_tasks(request, queryset)
        for task in queryset:
            self.log_change(request, task, "Enabled." if task.enabled else "Disabled.")

    @admin.action(description=_("Run selected tasks"))
    def run_tasks(self, request, queryset):
        super().run_tasks(request, queryset)
        self._log_each(request, queryset, "Run now.")


class CrontabScheduleAdmin(WritesByPermissionMixin, beat_admin.CrontabScheduleAdmin):
    pass


class IntervalScheduleAdmin(WritesByPermissionMixin, beat_admin.IntervalScheduleAdmin):
    pass


class SolarScheduleAdmin(WritesByPermissionMixin, beat_admin.SolarScheduleAdmin):
    pass


class ClockedScheduleAdmin(WritesByPermissionMixin, beat_admin.ClockedScheduleAdmin):
    pass


def register(site: admin.AdminSite = admin.site) -> None:
    for model, model_admin in [
        (PeriodicTask, PeriodicTaskAdmin),
        (CrontabSchedule, CrontabScheduleAdmin),
        (IntervalSchedule, IntervalScheduleAdmin),
        (SolarSchedule, SolarScheduleAdmin),
        (ClockedSchedule, ClockedScheduleAdmin),
    ]:
        if site.is_registered(model):
            site.unregister(model)
        site.register(model, model_admin)
