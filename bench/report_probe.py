"""One report rendering in a fresh process, so its peak memory is its own: ``python -m bench.report_probe ours
<report id>`` runs our whole generation path; ``python -m bench.report_probe bare <html file>`` hands the same HTML
to WeasyPrint with its defaults. Prints one JSON line: seconds, peak RSS and RSS before the work (MiB)."""

import json
import os
import resource
import sys
import time
from pathlib import Path


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(kind: str, arg: str) -> dict:
    import weasyprint  # both sides pay the import before the baseline is taken

    if kind == "ours":
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
        django.setup()
        from reports.models import Report
        from reports.services import report_generate

        before = _rss_mib()
        started = time.perf_counter()
        report_generate(report_id=int(arg))
        seconds = time.perf_counter() - started
        report = Report.objects.get(pk=int(arg))
        extra = {"status": report.status, "pages": report.page_count, "bytes": report.size_bytes}
    else:
        html = Path(arg).read_text()
        before = _rss_mib()
        started = time.perf_counter()
        pdf = weasyprint.HTML(string=html).write_pdf()
        seconds = time.perf_counter() - started
        extra = {"status": "completed", "bytes": len(pdf)}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_rss_mib": peak, "rss_before_mib": before, **extra}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1], sys.argv[2])) + "\n")
