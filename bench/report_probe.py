"""One report rendering in a fresh process, so its memory is its own: ``python -m bench.report_probe ours
<report id>`` runs our whole generation path; ``python -m bench.report_probe bare <html file>`` hands the same HTML
to WeasyPrint with its defaults. Prints one JSON line: seconds, CPU seconds, peak memory and memory before the work.

Both sides are measured the same way, over the process and every process below it (the processes a long report is
laid out in count too), by a thread sampling /proc every 50 ms: memory as PSS (a page shared by n processes counts
1/n in each, so the render processes' pages shared with the server they fork from are not counted twice), CPU time
as each process's last reading. What a process does in its last 50 ms may be missed, on either side.
"""

import json
import os
import sys
import threading
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _tree(root: int) -> dict[int, tuple[float, float]]:
    """PSS (MiB) and CPU seconds of ``root`` and every process below it."""
    found, pending = {}, [root]
    while pending:
        pid = pending.pop()
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            pss = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")) / 1024
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            found[pid] = (pss, (int(fields[11]) + int(fields[12])) / TICKS)
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError, StopIteration):
            continue  # it ended meanwhile
    return found


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.cpu: dict[int, float] = {}
        self.done = threading.Event()
        self._sample()
        self.before = self.peak
        self.cpu_before = sum(self.cpu.values())

    def _sample(self) -> None:
        tree = _tree(os.getpid())
        self.peak = max(self.peak, sum(pss for pss, _ in tree.values()))
        for pid, (_, cpu) in tree.items():
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu)

    def run(self) -> None:
        while not self.done.wait(0.05):
            self._sample()

    def stop(self) -> dict:
        self.done.set()
        self.join()
        self._sample()
        return {
            "peak_mib": self.peak,
            "before_mib": self.before,
            "cpu_seconds": sum(self.cpu.values()) - self.cpu_before,
        }


def main(kind: str, arg: str) -> dict:
    import weasyprint  # both sides pay the import before the baseline is taken

    if kind == "ours":
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
        django.setup()
        from reports import paging, pdf
        from reports.models import Report
        from reports.services import report_generate

        # As in a worker, whose pool processes start the server the render processes fork from when they start
        # (reports/tasks.py): started, and its preloading done, before the clock starts.
        pdf.render_parts([""])
        paging._widths("DejaVu Sans"), paging._widths("DejaVu Sans:bold")  # read once per pool process too
        sampler = Sampler()
        sampler.start()
        started = time.perf_counter()
        report_generate(report_id=int(arg))
        seconds = time.perf_counter() - started
        measured = sampler.stop()
        report = Report.objects.get(pk=int(arg))
        extra = {"status": report.status, "pages": report.page_count, "bytes": report.size_bytes,
                 "processes": report.summary.get("render_processes")}  # fmt: skip
    else:
        html = Path(arg).read_text()
        sampler = Sampler()
        sampler.start()
        started = time.perf_counter()
        pdf = weasyprint.HTML(string=html).write_pdf()
        seconds = time.perf_counter() - started
        measured = sampler.stop()
        extra = {"status": "completed", "bytes": len(pdf)}
    return {"seconds": seconds, **measured, **extra}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1], sys.argv[2])) + "\n")
