import io
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from pypdf import PdfReader

from accounts.models import Tenant, User
from reports.models import Report
from reports.services import report_generate, report_request


def add_users(tenant: Tenant, count: int, *, prefix: str = "member") -> list[User]:
    """Many users at once (no password hashing): enough to make a report span pages."""
    users = [
        User(
            email=f"{prefix}{n:05d}@{tenant.slug}.example.com",
            tenant=tenant,
            first_name="Grace",
            last_name=f"Hopper{n}",
        )
        for n in range(count)
    ]
    for user in users:
        user.set_unusable_password()
    return User.objects.bulk_create(users)


def pdf_text(content: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(content))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def stored_files_of(report: Report) -> list[str]:
    """Files in storage that belong to this report, whether or not its row points at them.

    The test media folder outlives test databases (whose ids start again at 1): older files are not this report's.
    """
    folder = f"reports/tenant-{report.tenant_id}"
    try:
        _, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    return [
        name
        for name in files
        if name.startswith(f"report-{report.pk}-")
        and default_storage.get_modified_time(f"{folder}/{name}") >= report.created_at
    ]


@pytest.fixture
def completed_report(tenant_user) -> Report:
    """A users report of tenant "Acme", rendered for real by the service (the queue is not the subject here)."""
    report = report_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, report_type="users")
    return report_generate(report_id=report.pk)


def render_processes_under(root: int) -> list[int]:
    """Processes below ``root`` forked by a multiprocessing fork server: the render processes (reports/pdf.py).

    A fork keeps the server's command line; the programs the server runs while it preloads WeasyPrint (``ldconfig``,
    ``gcc``: ctypes looking for libraries) do not, and are not render processes: taken for them, a test went on
    before its report had begun."""
    parents, commands = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                commands[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])

    def below(pid: int) -> bool:
        while pid in parents and pid != root:
            pid = parents[pid]
        return pid == root

    return [
        pid
        for pid, parent in parents.items()
        if pid != root and below(pid) and b"forkserver" in commands.get(parent, b"") and b"forkserver" in commands[pid]
    ]
