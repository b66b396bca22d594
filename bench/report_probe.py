"""One report rendering in a fresh process, so its peak memory is its own: ``python -m bench.report_probe ours
<report id>`` runs our whole generation path; ``python -m bench.report_probe bare <html file>`` hands the same HTML
to WeasyPrint with its defaults. Prints one JSON line: seconds, peak RSS and RSS before the work (MiB).

Peak RSS is the most the process and all its descendants held at once (sampled every 20 ms), so the processes a
long report is laid out in count too; pages they share with their parent are counted in each, so it errs high."""

import json
import os
import sys
import threading
import time
from pathlib import Path

PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20


def _tree_rss_mib(root: int) -> float:
    """Resident memory of ``root`` and every process below it, read from /proc (a few small reads: cheap enough to
    sample every 20 ms without slowing the work measured)."""
    total, pending = 0.0, [root]
    while pending:
        pid = pending.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_MIB
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue  # it ended meanwhile
    return total


class PeakSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, _tree_rss_mib(os.getpid()))

    def stop(self) -> float:
        self.done.set()
        self.join()
        return max(self.peak, _tree_rss_mib(os.getpid()))


def main(kind: str, arg: str) -> dict:
    import weasyprint  # both sides pay the import before the baseline is taken

    if kind == "ours":
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
        django.setup()
        from reports import pdf
        from reports.models import Report
        from reports.services import report_generate

        # A worker lays out many reports; the server its render processes fork from starts with the first of them.
        pdf.render_parts(["", ""])
        before = _tree_rss_mib(os.getpid())
        sampler = PeakSampler()
        sampler.start()
        started = time.perf_counter()
        report_generate(report_id=int(arg))
        seconds = time.perf_counter() - started
        peak = sampler.stop()
        report = Report.objects.get(pk=int(arg))
        extra = {"status": report.status, "pages": report.page_count, "bytes": report.size_bytes,
                 "processes": report.summary.get("render_processes")}  # fmt: skip
    else:
        html = Path(arg).read_text()
        before = _tree_rss_mib(os.getpid())
        sampler = PeakSampler()
        sampler.start()
        started = time.perf_counter()
        pdf = weasyprint.HTML(string=html).write_pdf()
        seconds = time.perf_counter() - started
        peak = sampler.stop()
        extra = {"status": "completed", "bytes": len(pdf)}
    return {"seconds": seconds, "peak_rss_mib": peak, "rss_before_mib": before, **extra}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1], sys.argv[2])) + "\n")
