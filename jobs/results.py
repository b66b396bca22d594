"""The result backend: django-celery-results' ``django-db``, with each state written in one statement.

The stock backend stores a state as SELECT, then INSERT or UPDATE inside a transaction: two to four round trips, and
every task writes STARTED then its outcome. An upsert (``INSERT … ON CONFLICT (task_id) DO UPDATE``, in PostgreSQL and
SQLite alike) does the same in one. Rows, columns and values are exactly those of the stock backend.

A job's STARTED write also counts the start on its Job row (``run_count``, and ``crash_count`` when the start before
it never ended: what stops a poison pill) and reads whether the job was canceled; on PostgreSQL in the same statement,
elsewhere (SQLite cannot write two tables in one statement) just before it. The answer is left on the task's request
as ``job_run`` for ``JobTask``, which counts the start itself when no STARTED write did (track_started off, another
backend).
"""

import django
from django.apps import apps

if not apps.ready and not apps.loading:
    # `celery -A config result|call|purge …` loads the backend without setting Django up (the Django fixup does
    # that for workers and beat only), and the models below need it.
    django.setup()

from celery import states  # noqa: E402
from django.db import connections, router  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_celery_results.backends.database import DatabaseBackend  # noqa: E402
from django_celery_results.models import TaskResult  # noqa: E402

from jobs.localcache import invalidate  # noqa: E402
from jobs.services import job_run_start, job_run_start_sql  # noqa: E402

# Written on every state; date_created only when the row is new, date_started only with STARTED.
STATE_FIELDS = [
    "status", "result", "traceback", "meta", "content_encoding", "content_type",
    "periodic_task_name", "task_name", "task_args", "task_kwargs", "worker", "date_done",
]  # fmt: skip
COLUMNS = ["task_id", "date_created", *STATE_FIELDS]


def _upsert_sql(connection, *, started: bool) -> str:
    meta = TaskResult._meta
    quote = connection.ops.quote_name
    columns = [*COLUMNS, "date_started"] if started else COLUMNS
    updated = [*STATE_FIELDS, "date_started"] if started else STATE_FIELDS
    column = {name: quote(meta.get_field(name).column) for name in columns}
    return (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(column[n] for n in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({column['task_id']}) DO UPDATE SET "
        + ", ".join(f"{column[n]} = EXCLUDED.{column[n]}" for n in updated)
    )


def _upsert_counting_start_sql(connection) -> str:
    """PostgreSQL: the STARTED upsert, with the Job's start (and crash: jobs.services.job_run_start_sql) counted in a
    data-modifying WITH, which reads the state stored before this statement's; answers (starts so far, crashes so
    far, canceled_at), all NULL when no Job has this task id. Parameters: the task id twice, then the upsert's."""
    return (
        f"WITH job AS ({job_run_start_sql(connection)}) "
        + _upsert_sql(connection, started=True)
        + " RETURNING (SELECT run_count FROM job), (SELECT crash_count FROM job), (SELECT canceled_at FROM job)"
    )


class UpsertDatabaseBackend(DatabaseBackend):
    _sql_cache: dict = {}

    def _sql(self, connection, kind: str) -> str:
        key = (connection.vendor, kind)
        if key not in self._sql_cache:
            self._sql_cache[key] = (
                _upsert_counting_start_sql(connection)
                if kind == "count"
                else _upsert_sql(connection, started=kind == "started")
            )
        return self._sql_cache[key]

    def _store_result(self, task_id, result, status, traceback=None, request=None, using=None):
        content_type, content_encoding, encoded = self.encode_content(result)
        _, _, meta = self.encode_content(
            {**self._get_meta_from_request(request), "children": self.current_task_children(request)}
        )
        extended = self._get_extended_properties(request, traceback)
        now = timezone.now()
        started = status == states.STARTED
        params = [
            task_id, now, status, encoded, traceback, meta, content_encoding, content_type,
            extended["periodic_task_name"], extended["task_name"], extended["task_args"], extended["task_kwargs"],
            extended["worker"], now, *([now] if started else []),
        ]  # fmt: skip
        alias = using or router.db_for_write(TaskResult)
        connection = connections[alias]
        fields = TaskResult._meta
        names = [*COLUMNS, "date_started"] if started else COLUMNS
        params = [fields.get_field(n).get_db_prep_save(v, connection) for n, v in zip(names, params, strict=True)]
        if started and connection.vendor == "postgresql" and self._runs_a_job(request):
            with connection.cursor() as cursor:
                cursor.execute(self._sql(connection, "count"), [task_id, task_id, *params])
                run_count, crash_count, canceled_at = cursor.fetchone()
            request.job_run = None if run_count is None else (run_count, crash_count, canceled_at is not None)
        else:
            if started and self._runs_a_job(request):
                request.job_run = job_run_start(task_id=task_id)  # before STARTED replaces the state it reads
            with connection.cursor() as cursor:
                cursor.execute(self._sql(connection, "started" if started else "state"), params)
        invalidate("status", task_id)  # web processes keep statuses in memory (jobs.localcache)
        return encoded

    def _runs_a_job(self, request) -> bool:
        if request is None or getattr(request, "is_eager", False):
            return False
        task = self.app.tasks.get(getattr(request, "task", None))
        return getattr(task, "counts_job_runs", False)
