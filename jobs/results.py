"""The result backend: django-celery-results' ``django-db``, with each state written in one statement.

The stock backend stores a state as SELECT, then INSERT or UPDATE inside a transaction: two to four round trips, and
every task writes STARTED then its outcome. An upsert (``INSERT … ON CONFLICT (task_id) DO UPDATE``, in PostgreSQL and
SQLite alike) does the same in one. Rows, columns and values are exactly those of the stock backend.
"""

from celery import states
from django.db import connections, router
from django.utils import timezone
from django_celery_results.backends.database import DatabaseBackend
from django_celery_results.models import TaskResult

# Written on every state; date_created only when the row is new, date_started only with STARTED.
STATE_FIELDS = [
    "status", "result", "traceback", "meta", "content_encoding", "content_type",
    "periodic_task_name", "task_name", "task_args", "task_kwargs", "worker", "date_done",
]  # fmt: skip


class UpsertDatabaseBackend(DatabaseBackend):
    def _store_result(self, task_id, result, status, traceback=None, request=None, using=None):
        content_type, content_encoding, encoded = self.encode_content(result)
        _, _, meta = self.encode_content(
            {**self._get_meta_from_request(request), "children": self.current_task_children(request)}
        )
        extended = self._get_extended_properties(request, traceback)
        now = timezone.now()
        values = {
            "status": status, "result": encoded, "traceback": traceback, "meta": meta,
            "content_encoding": content_encoding, "content_type": content_type,
            "periodic_task_name": extended["periodic_task_name"], "task_name": extended["task_name"],
            "task_args": extended["task_args"], "task_kwargs": extended["task_kwargs"], "worker": extended["worker"],
            "date_done": now,
        }  # fmt: skip
        updated = list(STATE_FIELDS)
        if status == states.STARTED:
            values["date_started"] = now
            updated.append("date_started")
        columns = ["task_id", "date_created", *values]
        meta_fields = TaskResult._meta
        column = {name: meta_fields.get_field(name).column for name in columns}
        alias = using or router.db_for_write(TaskResult)
        connection = connections[alias]
        quote = connection.ops.quote_name
        sql = (
            f"INSERT INTO {quote(meta_fields.db_table)} ({', '.join(quote(column[n]) for n in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT ({quote(column['task_id'])}) DO UPDATE SET "
            + ", ".join(f"{quote(column[n])} = EXCLUDED.{quote(column[n])}" for n in updated)
        )
        params = [task_id, now, *values.values()]
        params = [
            meta_fields.get_field(name).get_db_prep_save(value, connection)
            for name, value in zip(columns, params, strict=True)
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return encoded
