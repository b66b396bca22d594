"""A real headless Chromium: log in, ask for a report, watch it finish without reloading, download the PDF."""

import re
import shutil
from pathlib import Path

import pytest

from reports.models import Report
from tests.factories import TenantFactory, UserFactory
from tests.reports.conftest import add_users, pdf_text

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"),
]


def test_a_user_generates_a_report_and_watches_it_complete(live_server, worker_process, tmp_path, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; Django would refuse even the live server's set-up.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import expect, sync_playwright

    # given a user of a tenant with enough people for a few pages, and a worker that is not running yet
    user = UserFactory(tenant=TenantFactory(name="Initech"), email="peter@initech.example.com")
    add_users(user.tenant, 120)
    worker = worker_process()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(accept_downloads=True, base_url=live_server.url).new_page()

            # when they log in (the reports page sends them to the login form and back)
            page.goto("/reports/")
            expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/reports/")
            page.fill("#id_username", user.email)
            page.fill("#id_password", "correct-horse-battery")
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_have_text("Reports")

            # and ask for a users report
            page.select_option("#id_report_type", "users")
            page.click("#generate")
            # (no ORM calls in here: inside Playwright's loop they would open a connection that is never closed)
            expect(page).to_have_url(re.compile(rf"^{live_server.url}/reports/\d+/$"))
            report_id = int(page.url.rstrip("/").rpartition("/")[2])
            expect(page.locator("#status")).to_have_text("pending")
            expect(page.locator("#download")).to_be_hidden()

            # then, once a worker is there, the status changes on the same page, never reloaded
            page.evaluate(
                """() => {
                    const status = document.getElementById("status");
                    window.seenStatuses = [status.textContent];
                    new MutationObserver(() => window.seenStatuses.push(status.textContent))
                        .observe(status, {childList: true, characterData: true, subtree: true});
                }"""
            )
            worker.start()
            expect(page.locator("#status")).to_have_text("completed", timeout=60_000)
            seen = page.evaluate("window.seenStatuses")  # survives only if the page was never reloaded
            assert seen[0] == "pending" and seen[-1] == "completed", seen
            expect(page.locator("#download")).to_be_visible()
            expect(page.locator("#share-url")).to_have_value(re.compile(rf"^{live_server.url}/reports/shared/\S+/$"))
            page.screenshot(path=tmp_path / "report-completed.png", full_page=True)

            # and the download button hands over the PDF
            with page.expect_download() as download_info:
                page.click("#download")
            download = download_info.value
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
        finally:
            browser.close()

    assert download.suggested_filename.startswith("initech-users-") and saved.suffix == ".pdf"
    reader, text = pdf_text(saved.read_bytes())
    assert "Initech" in text and "peter@initech.example.com" in text
    report = Report.objects.get(tenant=user.tenant)
    assert report.pk == report_id and report.status == "completed" and len(reader.pages) == report.page_count > 1
    assert (tmp_path / "report-completed.png").stat().st_size > 0, worker.log()
