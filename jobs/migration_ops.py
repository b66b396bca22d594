"""Migration operations shared by the apps' migrations."""

from django.db import migrations


def drop_pattern_index(table: str, column: str, name: str) -> migrations.RunPython:
    """Drop the second index Django makes on PostgreSQL for an indexed text column (``<…>_like``, with
    ``varchar_pattern_ops``, for ``LIKE 'prefix%'``). Ids looked up only whole need none, and each is written on
    every insert. Reversed, it is made again. Nothing on other databases, which have no such index."""

    def drop(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")

    def restore(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            quote = schema_editor.quote_name
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {quote(table)} ({quote(column)} varchar_pattern_ops)"
            )

    return migrations.RunPython(drop, restore, elidable=False)
