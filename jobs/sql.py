"""Lock, update and insert rows with written-out SQL, for the per-job hot paths where the ORM's query building costs
more than the queries: ``select_for_update().get()`` and ``save(update_fields=…)`` spend about 1 ms of CPU on an
email's delivery, against 0.4 ms for these two (bench/); ``insert_fields`` and ``insert_values`` let an enqueue
write two rows in one statement (jobs.services.job_enqueue_with). Values go through the fields' own conversions both
ways, so the instance and the row are exactly what the ORM would give and write.
"""

from functools import cache

from django.conf import settings
from django.db import connections, router
from django.db.models import Field, Model


def row_lock(model: type[Model], pk) -> Model | None:
    """The row with this primary key as an instance, locked until the transaction ends; None if there is none."""
    alias = router.db_for_write(model)
    connection = connections[alias]
    meta = model._meta
    quote = connection.ops.quote_name
    fields = meta.concrete_fields
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""  # SQLite locks the whole database
    sql = (
        f"SELECT {', '.join(quote(f.column) for f in fields)} FROM {quote(meta.db_table)} "
        f"WHERE {quote(meta.pk.column)} = %s{lock}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [meta.pk.get_db_prep_value(pk, connection)])
        row = cursor.fetchone()
    if row is None:
        return None
    values = []
    for field, value in zip(fields, row, strict=True):
        column = field.get_col(meta.db_table)
        for convert in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
            value = convert(value, column, connection)
        values.append(value)
    return model.from_db(alias, [f.attname for f in fields], values)


def row_update(instance: Model, fields: list[str]) -> None:
    """Write these fields of the instance to its row (what ``save(update_fields=fields)`` writes, without signals)."""
    meta = instance._meta
    alias = router.db_for_write(type(instance), instance=instance)
    connection = connections[alias]
    quote = connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {', '.join(f'{quote(f.column)} = %s' for f in columns)} "
        f"WHERE {quote(meta.pk.column)} = %s"
    )
    params = [f.get_db_prep_save(f.pre_save(instance, add=False), connection) for f in columns]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, meta.pk.get_db_prep_value(instance.pk, connection)])


def insert_fields(model: type[Model], leave_out: tuple[str, ...] = ()) -> tuple[Field, ...]:
    """The fields that inserting a new ``model`` instance writes, as ``save()`` would, without the database-made
    primary key and the fields left out (by name or attname)."""
    return tuple(
        f
        for f in model._meta.local_concrete_fields
        if not (f.primary_key and f.db_returning) and f.name not in leave_out and f.attname not in leave_out
    )


def insert_values(instance: Model, fields: tuple[Field, ...], *, connection) -> list:
    """The instance's prepared values for those fields (``save()``'s: defaults and ``pre_save`` applied)."""
    return [f.get_db_prep_save(f.pre_save(instance, add=True), connection) for f in fields]


def prepared_cursor(connection):
    """A cursor for a statement run on every request (on PostgreSQL, with ``DATABASE_PREPARED_STATEMENTS`` on): the
    statement is prepared on the connection the first time it runs (with each set of parameter types: a None where
    there is usually an id is another), and then only bound and run: parsing and planning our
    two-row insert on every enqueue took about a fifth of PostgreSQL's CPU time for it (bench/: 0.42 → 0.34 ms a
    request). Its parameters are bound by the server, so each one must have a type the statement makes clear (cast
    those it does not). Elsewhere, Django's own cursor.

    Through Django's cursor wrapper all the same: database errors are Django's, and query logging and counting see it.
    """
    if connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_preparing_cursor_class()(connection.connection))


@cache
def _preparing_cursor_class() -> type:
    from psycopg import Cursor, errors  # PostgreSQL only

    class PreparingCursor(Cursor):
        """psycopg's server-binding cursor, asking for every statement it runs to be prepared.

        Django turns psycopg's prepared statements off (``prepare_threshold`` None, for connection poolers), and psycopg
        then prepares nothing, even when asked: they are on while this cursor runs a statement, and only then, so that
        psycopg does not keep count of every other statement run on the connection (each a new text: Django binds
        parameters into the text) to prepare those it sees often.
        """

        def execute(self, query, params=None, *, prepare=None, binary=None):
            threshold = self.connection.prepare_threshold
            if threshold is None:
                self.connection.prepare_threshold = 2**31 - 1  # counting alone would never prepare one
            try:
                return super().execute(query, params, prepare=True, binary=binary)
            except (errors.InvalidSqlStatementName, errors.FeatureNotSupported):
                # The server no longer has it as psycopg remembers it (deallocated behind psycopg's back, say by a
                # pooler's DISCARD ALL, or its result type changed): psycopg forgets them all, and the next run
                # prepares it again. This one fails, as any statement that meets a database error does.
                self.connection._prepared.clear()
                raise
            finally:
                self.connection.prepare_threshold = threshold

        def _send_query_prepared(self, name, pgq, *, binary=None):
            self._query = pgq  # the text Django's query log reads (last_executed_query): unset by psycopg when prepared
            super()._send_query_prepared(name, pgq, binary=binary)

    return PreparingCursor
