"""Lock, update and insert rows with written-out SQL, for the per-job hot paths where the ORM's query building costs
more than the queries: ``select_for_update().get()`` and ``save(update_fields=…)`` spend about 1 ms of CPU on an
email's delivery, against 0.4 ms for these two (bench/); ``insert_fields`` and ``insert_values`` let an enqueue
write two rows in one statement (jobs.services.job_enqueue_with). Values go through the fields' own conversions both
ways, so the instance and the row are exactly what the ORM would give and write.
"""

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
