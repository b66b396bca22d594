"""A long users report is laid out in several processes at once (reports/pdf.py) from a page plan made beforehand
(reports/paging.py). What must hold: the joined PDF reads exactly like one rendered whole, and whatever goes wrong
with a part, the report still comes out right and no render process is left behind."""

import datetime
import multiprocessing
import re
import time
from types import SimpleNamespace

import pytest
from django.template.loader import render_to_string
from weasyprint import HTML

from reports import paging, pdf, rendering
from reports.services import report_generate, report_request
from tests.conftest import wait_for_status
from tests.reports.conftest import add_users, pdf_text, render_processes_under

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime.datetime(2026, 11, 1, 9, 30, tzinfo=datetime.UTC)

# Rows that wrap, or not, in every way the plan must foresee.
AWKWARD = [
    ("short@x.io", "Al", "Li"),
    ("a-very-long.hyphenated-address-that-wraps-after-hyphens@subdomain.example-company.com", "Ann", "Lee"),
    ("nobreakopportunityatallinthisaddresswhatsoeverxxxxxxxxxxxxxxxxxxxxxxxxxxxxx@example.com", "Bo", "Wu"),
    ("mmmmmmmmmmmmmmmmmmmmmmmmmmmm@wwwwwwwwwwwwwwwwwwwwww.com", "Maximilian Alexander Jonathan", "Featherstonehaugh"),
    ("jose@example.com", "José-María Ñúñez", "de la Peña y Götzendorffer"),
    ("plain.user@example.com", "", "Onlylastname"),
    ("wide@example.com", "漢字の名前とても長い名前", "山田"),
    ("cn@example.com", "山田 太郎", "東京都千代田区"),
    ("emoji@example.com", "🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉", "🚀 Launch"),
]


def users_rows(count: int) -> list[dict]:
    rows = []
    for n in range(count):
        plain = (f"member{n:05d}@acme.example.com", "Grace", f"H{n}")
        email, first, last = AWKWARD[n % len(AWKWARD)] if n % 3 == 0 else plain
        rows.append({"n": n + 1, "id": n, "email": email, "first_name": first, "last_name": last, "is_active": True,
                     "is_staff": False, "date_joined": NOW, "last_login": None})  # fmt: skip
    return rows


def context(rows: list[dict], *, tenant_name: str = "Acme") -> dict:
    return {
        "report": SimpleNamespace(pk=12),
        "tenant": SimpleNamespace(name=tenant_name),
        "requested_by": None,
        "generated_at": NOW,
        "total_users": len(rows),
        "active_users": len(rows),
        "staff_users": 0,
        "never_logged_in": len(rows),
    }


@pytest.mark.parametrize("tenant_name", ["Acme", "A tenant whose name is long enough to take two lines " * 2])
def test_the_page_plan_matches_weasyprints_own_layout_row_for_row(tenant_name):
    # given rows of every awkward shape, planned into pages
    rows = users_rows(160)
    meta = rendering._masthead_meta(context(rows, tenant_name=tenant_name))
    pages = paging.user_pages(rows, tenant_name=tenant_name, meta=meta)

    # when the whole planned document is laid out by WeasyPrint
    html = render_to_string("reports/pdf/users.html", context(rows, tenant_name=tenant_name) | {"pages": pages})
    document = HTML(string=html).render()

    # then no planned page overflowed: WeasyPrint needed exactly the pages planned, with the rows planned on each
    assert len(document.pages) == len(pages) > 3
    for planned, page in zip(pages, document.pages, strict=True):
        assert _row_numbers(page) == [row["n"] for row in planned]


def test_the_plan_fills_pages_as_full_as_one_long_table_would():
    # given plain rows, as most tenants have
    rows = [
        row | {"email": f"member{row['n']:05d}@acme.example.com", "first_name": "Grace", "last_name": f"H{row['n']}"}
        for row in users_rows(140)
    ]
    pages = paging.user_pages(rows, tenant_name="Acme", meta=rendering._masthead_meta(context(rows)))

    # when WeasyPrint lays out the same rows as one table left to break where it will
    natural = HTML(string=render_to_string("reports/pdf/users.html", context(rows) | {"pages": [rows]})).render()

    # then the plan puts the same rows on each page: nothing is wasted for being planned
    assert [_row_numbers(page) for page in natural.pages] == [[row["n"] for row in page] for page in pages]


def test_a_long_report_rendered_in_parts_reads_like_one_document(celery_worker, api, settings):
    # given a tenant of 400 users and reports split into runs of at least 3 pages over 2 processes
    settings.REPORTS_RENDER_PROCESSES = 2
    settings.REPORTS_PAGES_PER_PROCESS = 3
    add_users(api.user.tenant, 400)

    # when the worker renders the users report
    accepted = api.post("/api/reports/generate/", {"report_type": "users"}, format="json").json()
    final = wait_for_status(api, accepted["task_id"], timeout=90)
    assert final["status"] == "SUCCESS", final
    content = b"".join(api.get(final["result"]["download_url"]).streaming_content)

    # then it was laid out in two processes and joined into one PDF, numbered 1..N throughout
    reader, text = pdf_text(content)
    pages = len(reader.pages)
    assert final["result"]["page_count"] == pages > 6
    from reports.models import Report

    assert Report.objects.get(pk=accepted["report_id"]).summary["render_processes"] == 2
    for number, page in enumerate(reader.pages, start=1):
        page_text = page.extract_text()
        assert f"Page {number} of {pages}" in page_text
        if number == 1:  # the masthead, and no running headings above it
            assert "requested by" in page_text and "Acme · Users report" not in page_text
        else:  # running headings on every later page, the continued part's too, and no trace of its hidden masthead
            assert "Acme · Users report" in page_text and "requested by" not in page_text
    assert reader.metadata.title == "Users — Acme" and reader.trailer["/Root"]["/Lang"] == "en"

    # and every user is listed once, in order, numbered 1..401 without a gap at the join
    rows = _user_rows(text)
    assert [number for number, _ in rows] == list(range(1, 402))
    emails = [email for _, email in rows]
    assert emails == sorted(emails) and len(set(emails)) == 401 and api.user.email in emails


def test_parts_that_come_out_longer_than_planned_are_rendered_whole_instead(tenant_user, settings, monkeypatch, caplog):
    # given a plan that believes rows are shorter than they are, so its pages overflow
    settings.REPORTS_RENDER_PROCESSES = 2
    settings.REPORTS_PAGES_PER_PROCESS = 2
    add_users(tenant_user.tenant, 300)
    monkeypatch.setattr(paging, "ROW_EXTRA", 1.0)

    # when the report is generated
    report = report_generate(report_id=_users_report(tenant_user).pk)

    # then the mismatch is noticed and the whole document rendered in one process: correct, only slower
    assert "came out with" in caplog.text and "rendering it whole" in caplog.text
    assert report.status == "completed" and report.summary["render_processes"] == 1
    reader, text = pdf_text(report.file.read())
    assert report.page_count == len(reader.pages)
    assert f"Page {report.page_count} of {report.page_count}" in text
    assert [number for number, _ in _user_rows(text)] == list(range(1, 302))


def test_a_render_process_that_dies_leaves_the_report_to_be_rendered_whole(tenant_user, settings, monkeypatch, caplog):
    # given a long report, and a render process killed while it lays out its part
    settings.REPORTS_RENDER_PROCESSES = 2
    settings.REPORTS_PAGES_PER_PROCESS = 2
    add_users(tenant_user.tenant, 300)
    real_render_parts = pdf.render_parts

    def kill_one():
        multiprocessing.active_children()[-1].kill()

    monkeypatch.setattr(pdf, "render_parts", lambda parts, **kw: real_render_parts(parts, started=kill_one, **kw))

    # when the report is generated
    report = report_generate(report_id=_users_report(tenant_user).pk)

    # then the death is noticed and the report rendered whole, complete
    assert "exited with -9 before sending its part" in caplog.text
    assert report.status == "completed" and report.summary["render_processes"] == 1
    _, text = pdf_text(report.file.read())
    assert [number for number, _ in _user_rows(text)] == list(range(1, 302))


def test_an_interrupted_render_kills_the_render_processes_at_once():
    # given parts that take seconds to lay out, being laid out in processes of their own
    parts = [_small_document(6000)] * 2
    running = []

    class TimeLimit(Exception):
        pass

    def interrupted():
        running.extend(multiprocessing.active_children())
        assert len(running) == 2 and all(process.is_alive() for process in running)
        raise TimeLimit  # what Celery's soft time limit does while the parts are laid out

    # when the wait is interrupted
    started = time.monotonic()
    with pytest.raises(TimeLimit):
        pdf.render_parts(parts, started=interrupted)

    # then the processes rendering the parts were killed, not waited for
    assert time.monotonic() - started < 1.5
    assert [process.exitcode for process in running] == [-9, -9]
    assert multiprocessing.active_children() == []


def test_the_soft_time_limit_stops_every_render_process_of_the_report(worker_process, api):
    # given a worker whose reports may take two seconds, and a tenant whose report takes far longer, in two processes
    worker = worker_process(REPORTS_SOFT_TIME_LIMIT="2", REPORTS_TIME_LIMIT="60", REPORTS_RENDER_PROCESSES="2").start()
    add_users(api.user.tenant, 3000)

    # when the report runs past its limit while its parts are being laid out
    accepted = api.post("/api/reports/generate/", {"report_type": "users"}, format="json").json()
    first_seen = None
    deadline = time.monotonic() + 60
    while (final := api.get(f"/api/tasks/{accepted['task_id']}/").json())["status"] not in ("SUCCESS", "FAILURE"):
        assert time.monotonic() < deadline, final
        if first_seen is None and render_processes_under(worker.process.pid):
            first_seen = time.monotonic()
        time.sleep(0.05)
    ended = time.monotonic()

    # then it fails when its time is up, not when its other part would have been done (several seconds later)
    assert final["status"] == "FAILURE", worker.log()
    assert "time limit" in final["error"]
    assert first_seen is not None  # the second part was being laid out by a process of its own
    assert ended - first_seen < 4, worker.log()
    # and no process is left laying out a part nobody will read
    deadline = time.monotonic() + 5
    while render_processes_under(worker.process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert render_processes_under(worker.process.pid) == []


def _user_rows(text: str) -> list[tuple[int, str]]:
    """(number, email) of each users-table row in a PDF's extracted text."""
    return [(int(n), email) for n, email in re.findall(r"^(\d+) ([\w.+-]+@[\w-]+(?:\.[\w-]+)+)", text, re.M)]


def _users_report(user):
    return report_request(tenant_id=user.tenant_id, user_id=user.id, report_type="users")


def _row_numbers(page) -> list[int]:
    """The numbers in the first column of each users-table row laid out on a WeasyPrint page."""
    numbers = []

    def walk(box):
        kind = type(box).__name__
        if kind == "TableRowGroupBox" and box.is_header:
            return
        if kind == "TableRowBox":
            cell_text = "".join(box.children[0].element.itertext()).strip()
            if cell_text.isdigit():
                numbers.append(int(cell_text))
            return
        for child in getattr(box, "children", ()):
            walk(child)

    walk(page._page_box)
    return numbers


def _small_document(rows: int) -> str:
    body = "".join(f"<p>line {n}</p>" for n in range(rows))
    return f"<html><body>{body}</body></html>"
