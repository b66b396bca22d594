"""Settings for `make bench`: the production settings, plus what a benchmark needs and nothing it would measure.

- a dummy email backend (no SMTP server in the timing) and email/API rate limits far above any load we make;
- the bare baselines (``bench.bare``) mounted next to the real URLs, the bare no-op task and our tracked no-op job
  (``bench.tracked``) registered;
- ``BENCH_RESULT_BACKEND`` switches the result backend, for the bare Celery worker (Redis results);
- logging at WARNING by default: both sides skip the same per-request/per-task log lines;
- ``BENCH_UNFLUSHED_COMMIT=1`` (PostgreSQL): commits that do not wait for the flush to disk, for the enqueue figure's
  diagnostic side. Not durable: a database crash can lose what was just accepted.
"""

import os

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from config.settings import *  # noqa: E402, F403

ROOT_URLCONF = "bench.urls"
EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
EMAIL_RATE_LIMIT = "10000000/s"
EMAIL_TENANT_RATE_LIMIT = "10000000/s"
API_TENANT_RATE = "1000000000/min"
CELERY_IMPORTS = ["bench.bare", "bench.tracked"]
if os.environ.get("BENCH_RESULT_BACKEND"):
    CELERY_RESULT_BACKEND = os.environ["BENCH_RESULT_BACKEND"]
    CELERY_RESULT_EXPIRES = 3600
if os.environ.get("BENCH_UNFLUSHED_COMMIT") == "1":
    _options = DATABASES["default"]["OPTIONS"]  # noqa: F405
    _options["options"] = f"{_options.get('options', '')} -c synchronous_commit=off".strip()
