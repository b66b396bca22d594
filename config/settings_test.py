"""Settings for the test suite: the real stack, kept apart from a running development system."""

import os

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
# Queues, results and throttle counters of the tests live in their own Redis database, so a `make run` next door
# neither steals test tasks nor receives them. Under `pytest -n` each xdist worker ("gw0", "gw1", …) has its own
# Redis database (15, 14, …), test database (pytest-django adds the suffix) and media folder.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_XDIST_NUMBER = int(_XDIST_WORKER[2:]) if _XDIST_WORKER.startswith("gw") else 0
os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL", f"redis://127.0.0.1:6379/{15 - _XDIST_NUMBER}")
os.environ.pop("CELERY_BROKER_URL", None)
os.environ.pop("EMAIL_URL", None)

from config.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; test passwords are not secrets
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # tests that deliver mail start a real SMTP server
if os.environ.get("TEST_EMAIL_URL"):  # a worker process started by a test, pointed at that test's SMTP server
    vars().update(env.email_url("TEST_EMAIL_URL"))  # noqa: F405
EMAIL_RETRY_BASE_DELAY = 1.0
JOBS_RELAY_GRACE_SECONDS = 0
_MEDIA_FOLDER = f"test-media-{_XDIST_WORKER}" if _XDIST_WORKER else "test-media"
MEDIA_ROOT = os.environ.get("TEST_MEDIA_ROOT") or BASE_DIR / "var" / _MEDIA_FOLDER  # noqa: F405
API_TENANT_RATE = "100000/min"
if "CONN_MAX_AGE" in DATABASES["default"]:  # noqa: F405
    # The in-process test worker closes its connection after each task, so the test database can be dropped at the end
    # (a worker process started by a test may keep its connections: it is stopped before that).
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("TEST_CONN_MAX_AGE", "0"))  # noqa: F405
CELERY_IMPORTS = ["tests.chaos.tasks"]  # a poison pill and a tick recorder, for the chaos suite
# Most tests send bursts of email; the rate-limit tests set these for their worker processes.
EMAIL_RATE_LIMIT = os.environ.get("EMAIL_RATE_LIMIT", "1000/s")
EMAIL_TENANT_RATE_LIMIT = os.environ.get("EMAIL_TENANT_RATE_LIMIT", "1000/s")
# Workers wait on Redis in BRPOP calls this long; a short wait lets each test's worker stop at once.
CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "polling_interval": 0.1}  # noqa: F405
