"""The reports app's settings: a Django setting wins, then the environment, then the default here.

Time limits are read once, when the task module is imported (Celery fixes them at task registration), so a worker
started with ``REPORTS_SOFT_TIME_LIMIT=1`` in its environment enforces one second.
"""

import os

import environ
from django.conf import settings

_env = environ.Env()

DEFAULTS: dict[str, tuple[type, object]] = {
    # Celery limits for one rendering: soft raises inside the task (the row is marked failed), hard kills the child.
    "REPORTS_SOFT_TIME_LIMIT": (float, 120.0),
    "REPORTS_TIME_LIMIT": (float, 150.0),
    # Transient errors (database connection, storage I/O) are retried this many times, BASE·2^n seconds apart.
    "REPORTS_MAX_RETRIES": (int, 5),
    "REPORTS_RETRY_BASE_DELAY": (float, 5.0),
    # A long PDF is laid out in this many processes at once, in runs of at least REPORTS_PAGES_PER_PROCESS pages
    # (reports/pdf.py); 1 lays out every report in the worker's own process.
    "REPORTS_RENDER_PROCESSES": (int, min(4, os.cpu_count() or 1)),
    "REPORTS_PAGES_PER_PROCESS": (int, 4),
    # How long a shared link (/reports/shared/<token>/) opens the file, in seconds.
    "REPORTS_SHARE_MAX_AGE": (int, 24 * 60 * 60),
    # How many days the activity report covers.
    "REPORTS_ACTIVITY_DAYS": (int, 30),
    # Finished reports (and their files) older than this are deleted by cleanup_old_logs.
    "REPORTS_RETENTION_DAYS": (int, 30),
}


def setting(name: str):
    cast, default = DEFAULTS[name]
    if hasattr(settings, name):
        return cast(getattr(settings, name))
    return _env.get_value(name, cast=cast, default=default)
