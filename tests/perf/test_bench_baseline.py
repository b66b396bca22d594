"""The report benchmark's bare side renders the HTML our users report hands WeasyPrint, caught by bench.run. Kept in
step with the report code here, so a change there cannot break `make bench` unnoticed."""

import pytest

from bench import run
from tests.reports.conftest import add_users

pytestmark = pytest.mark.django_db


def test_the_bare_report_side_gets_the_html_of_our_users_report(tenant_user, tmp_path, monkeypatch):
    monkeypatch.setattr(run, "RESULTS_DIR", tmp_path)
    add_users(tenant_user.tenant, 30)

    path = run.report_html(tenant_user.tenant_id)

    html = path.read_text()
    assert path.parent == tmp_path and "<html" in html
    assert html.count(f"@{tenant_user.tenant.slug}.example.com") == 30
