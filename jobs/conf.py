"""Settings of the jobs app and their defaults.

Each can be set in config/settings.py or, without a code change, in the environment; read at call time so that a
test's ``settings`` override takes effect.
"""

import os

from django.conf import settings

DEFAULTS: dict[str, int] = {
    # How long finished jobs, and the results the status API shows for them, are kept.
    "JOBS_RETENTION_DAYS": 30,
    # Results of tasks that have no Job row (the periodic system tasks themselves).
    "TASK_RESULT_RETENTION_DAYS": 7,
    # Sent and failed emails; queued ones are never pruned.
    "EMAIL_RETENTION_DAYS": 90,
    # Rows deleted per short transaction by cleanup_old_logs.
    "CLEANUP_BATCH_SIZE": 1000,
}


def jobs_setting(name: str) -> int:
    if hasattr(settings, name):
        return int(getattr(settings, name))
    return int(os.environ.get(name, DEFAULTS[name]))
