"""A report can be canceled while it is being generated (jobs.services.job_cancel): its task notices between steps and
while parts are laid out, stores nothing, leaves no render process behind and frees the worker for the next job; its
status reads REVOKED from the cancel on. An email that is being sent cannot be canceled: the mail server may already
have it."""

import time

import pytest
from celery import states
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.models import Job
from jobs.services import JobCanceled, job_new_id
from reports.models import Report
from reports.services import CANCELED, report_generate, report_request
from tests.conftest import wait_for_status, wait_until
from tests.reports.conftest import add_users, render_processes_under, stored_files_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_report_canceled_while_its_parts_are_laid_out_stops_at_once_and_the_worker_goes_on(worker_process, api):
    # given a long report being laid out in two processes, with minutes of time limit left
    worker = worker_process(
        REPORTS_RENDER_PROCESSES="2", REPORTS_SOFT_TIME_LIMIT="300", REPORTS_TIME_LIMIT="360"
    ).start()
    add_users(api.user.tenant, 4000)
    accepted = api.post("/api/reports/generate/", {"report_type": "users"}, format="json").json()
    wait_until(lambda: render_processes_under(worker.process.pid), timeout=60, what="render processes", log=worker.log)

    # when its owner cancels it
    canceled = api.post(f"/api/tasks/{accepted['task_id']}/cancel/")
    asked = time.monotonic()

    # then the answer says REVOKED at once, and the task stops the report within moments
    assert canceled.status_code == 202, canceled.content
    assert canceled.json()["status"] == "REVOKED"
    report = Report.objects.get(pk=accepted["report_id"])
    wait_until(lambda: "canceled while it ran" in worker.log(), timeout=30, what="the task stopped", log=worker.log)
    assert time.monotonic() - asked < 6, worker.log()  # laying the rest out takes ten seconds or more
    report.refresh_from_db()
    assert (report.status, report.error) == (Report.Status.FAILED, CANCELED)
    assert stored_files_of(report) == [] and not report.file
    wait_until(lambda: not render_processes_under(worker.process.pid), timeout=5, what="no render process left")
    # the task's own outcome is the cancel, not a failure
    assert TaskResult.objects.get(task_id=accepted["task_id"]).status == states.REVOKED
    body = api.get(f"/api/tasks/{accepted['task_id']}/").json()
    assert (body["status"], body["result"]) == ("REVOKED", None)
    shown = api.get(f"/api/reports/{accepted['report_id']}/").json()
    assert (shown["status"], shown["error"], shown["download_url"]) == ("failed", CANCELED, None)

    # and the same worker takes the next report and finishes it
    Report.objects.all().delete()
    api.user.tenant.users.exclude(pk=api.user.pk).delete()
    again = api.post("/api/reports/generate/", {"report_type": "users"}, format="json").json()
    assert wait_for_status(api, again["task_id"], timeout=60)["status"] == "SUCCESS", worker.log()


def test_a_report_laid_out_in_one_process_is_stopped_before_its_file_is_stored(worker_process, api):
    # given a report laid out whole in this process, where nothing can be asked until WeasyPrint is done
    worker = worker_process(REPORTS_RENDER_PROCESSES="1", REPORTS_SOFT_TIME_LIMIT="300").start()
    add_users(api.user.tenant, 2000)
    accepted = api.post("/api/reports/generate/", {"report_type": "users"}, format="json").json()
    laying_out = wait_for_status(api, accepted["task_id"], statuses={"PROGRESS"}, timeout=60)
    while laying_out["status"] == "PROGRESS" and laying_out["progress"]["status"] != "laying out pages":
        laying_out = api.get(f"/api/tasks/{accepted['task_id']}/").json()

    # when it is canceled while the pages are laid out
    canceled = api.post(f"/api/tasks/{accepted['task_id']}/cancel/")
    assert canceled.status_code == 202, canceled.content

    # then the task stops once the layout is done, before writing and storing the file
    wait_until(lambda: "canceled while it ran" in worker.log(), timeout=60, what="the task stopped", log=worker.log)
    report = Report.objects.get(pk=accepted["report_id"])
    assert (report.status, report.error) == (Report.Status.FAILED, CANCELED)
    assert stored_files_of(report) == []
    assert TaskResult.objects.get(task_id=accepted["task_id"]).status == states.REVOKED
    assert api.get(f"/api/tasks/{accepted['task_id']}/").json()["status"] == "REVOKED"


def test_an_email_being_sent_cannot_be_canceled_and_a_running_report_can(api):
    # given an email job and a report job, both started by a worker (no worker here: their results say so)
    jobs = {}
    for kind, task_name in (("send_email", "notifications.send_email"), ("report_users", "reports.generate_report")):
        job = Job.objects.create(task_id=job_new_id(), tenant=api.user.tenant, kind=kind, task_name=task_name)
        TaskResult.objects.create(task_id=job.task_id, status=states.STARTED, task_name=task_name)
        jobs[kind] = job

    # and a web process that has their running status in memory
    for job in jobs.values():
        assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == "STARTED"

    # when both are canceled
    email = api.post(f"/api/tasks/{jobs['send_email'].task_id}/cancel/")
    report = api.post(f"/api/tasks/{jobs['report_users'].task_id}/cancel/")

    # then the email is refused, saying it is running, and changes nothing
    assert email.status_code == 409, email.content
    assert email.json()["status"] == "STARTED"
    jobs["send_email"].refresh_from_db()
    assert jobs["send_email"].canceled_at is None
    # and the report is canceled: REVOKED from now on, in every web process, while its task writes its own outcome
    assert report.status_code == 202, report.content
    assert report.json()["status"] == "REVOKED"
    assert api.get(f"/api/tasks/{jobs['report_users'].task_id}/").json()["status"] == "REVOKED"
    assert TaskResult.objects.get(task_id=jobs["report_users"].task_id).status == states.STARTED
    # a second cancel finds it already revoked
    again = api.post(f"/api/tasks/{jobs['report_users'].task_id}/cancel/")
    assert (again.status_code, again.json()["status"]) == (409, "REVOKED")


def test_a_cancel_and_the_report_being_recorded_completed_happen_in_one_order_or_the_other(api):
    # given a report whose file is recorded, though its task has not stored SUCCESS yet
    done = report_request(tenant_id=api.user.tenant_id, user_id=api.user.id, report_type="users")
    TaskResult.objects.create(task_id=done.job_id, status="PROGRESS", task_name="reports.generate_report")
    Report.objects.filter(pk=done.pk).update(status=Report.Status.COMPLETED)
    # and one whose cancel landed after its task last asked
    late = report_request(tenant_id=api.user.tenant_id, user_id=api.user.id, report_type="users")
    Job.objects.filter(task_id=late.job_id).update(canceled_at=timezone.now())

    # when the first is canceled, and the second is about to be recorded
    refused = api.post(f"/api/tasks/{done.job_id}/cancel/")
    with pytest.raises(JobCanceled):
        report_generate(report_id=late.pk, raise_if_canceled=lambda: None)

    # then the completed one keeps its file and its job is not marked canceled: the status will read SUCCESS
    assert (refused.status_code, refused.json()["status"]) == (409, "SUCCESS")
    assert Job.objects.get(task_id=done.job_id).canceled_at is None
    # and the canceled one is not recorded completed, and its file is gone
    late.refresh_from_db()
    assert (late.status, late.error, late.file.name) == (Report.Status.FAILED, CANCELED, "")
    assert stored_files_of(late) == []


def test_a_run_that_begins_as_its_report_is_canceled_ends_revoked_not_failed(api):
    # given a report canceled while its run was starting: the cancel marked the row before the run could claim it
    report = report_request(tenant_id=api.user.tenant_id, user_id=api.user.id, report_type="users")
    TaskResult.objects.create(task_id=report.job_id, status="STARTED", task_name="reports.generate_report")
    assert api.post(f"/api/tasks/{report.job_id}/cancel/").status_code == 202

    # when the run goes on, then it stops as canceled (its task records REVOKED), not as a failed report
    with pytest.raises(JobCanceled):
        report_generate(report_id=report.pk)
    report.refresh_from_db()
    assert (report.status, report.error) == (Report.Status.FAILED, "Canceled.")
