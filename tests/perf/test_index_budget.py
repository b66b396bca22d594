"""The indexes every enqueue writes (PostgreSQL): none that no query reads.

Each index of a table is written on every insert into it: a job and its email (or report, or webhook event) go in on
every enqueue, so an index there that nothing reads costs every request (bench/). Two kinds crept in unasked: a
foreign key's own index where an index of the model already starts with that column, and the second index Django
makes for ``LIKE 'prefix%'`` on a text column that is unique or indexed (ids are only ever looked up whole).
"""

import pytest
from django.db import connection

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's indexes"),
]

WRITTEN_ON_ENQUEUE = ["jobs_job", "notifications_outboundemail", "reports_report", "webhooks_webhookevent"]


def indexes(table: str) -> list[tuple[str, list[int], bool, bool, list[str]]]:
    """(name, column numbers, unique?, partial?, operator classes) of each index of the table."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, i.indkey::int2[], i.indisunique, i.indpred IS NOT NULL,
                   ARRAY(SELECT o.opcname FROM unnest(i.indclass::oid[]) AS k(oid) JOIN pg_opclass o ON o.oid = k.oid)
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = %s::regclass ORDER BY c.relname
            """,
            [table],
        )
        return [(name, list(keys), unique, partial, list(opclasses))
                for name, keys, unique, partial, opclasses in cursor.fetchall()]  # fmt: skip


@pytest.mark.parametrize("table", WRITTEN_ON_ENQUEUE)
def test_no_index_is_only_the_start_of_another(table):
    found = indexes(table)
    redundant = [
        (name, other)
        for name, keys, unique, partial, _ in found
        if not unique and not partial
        for other, other_keys, _, other_partial, _ in found
        if other != name and not other_partial and other_keys[: len(keys)] == keys
    ]
    assert redundant == []


@pytest.mark.parametrize("table", WRITTEN_ON_ENQUEUE)
def test_no_index_is_kept_for_prefix_searches(table):
    assert [name for name, *_, opclasses in indexes(table) if any("pattern_ops" in o for o in opclasses)] == []


def test_a_new_jobs_columns_that_are_empty_write_no_index_entry():
    partial = {name for name, _, _, partial, _ in indexes("jobs_job") if partial}
    assert {"job_unpublished_idx", "job_canceled_by_idx"} <= partial
    assert "email_dedupe_key_unique" in {name for name, _, _, partial, _ in indexes("notifications_outboundemail")
                                         if partial}  # fmt: skip
