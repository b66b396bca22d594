"""Settings for the test suite: the real stack, kept apart from a running development system."""

import os
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
# Queues, results and throttle counters of the tests live in their own Redis database (TEST_REDIS_URL, default 15), so
# a `make run` next door neither steals test tasks nor receives them. Under `pytest -n` each xdist worker ("gw0", "gw1",
# …) takes the next database down (15, 14, 12, …: 13 is the bench's), and has its own test database (pytest-django adds
# the suffix) and media folder. Processes started by a test get the worker's TEST_REDIS_URL and no PYTEST_ variables.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_XDIST_NUMBER = int(_XDIST_WORKER[2:]) if _XDIST_WORKER.startswith("gw") else 0
_TEST_REDIS = urlsplit(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
_TEST_REDIS_DBS = [n for n in range(int(_TEST_REDIS.path.strip("/") or 0), -1, -1) if n != 13]
if _XDIST_NUMBER >= len(_TEST_REDIS_DBS):
    raise ImproperlyConfigured(f"Too many test workers for the Redis databases below {_TEST_REDIS.geturl()}")
os.environ["REDIS_URL"] = _TEST_REDIS._replace(path=f"/{_TEST_REDIS_DBS[_XDIST_NUMBER]}").geturl()
os.environ.pop("CELERY_BROKER_URL", None)
os.environ.pop("CELERY_BROKER_WRITE_URL", None)
os.environ.pop("EMAIL_URL", None)

from config.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; test passwords are not secrets
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # tests that deliver mail start a real SMTP server
if os.environ.get("TEST_EMAIL_URL"):  # a worker process started by a test, pointed at that test's SMTP server
    vars().update(env.email_url("TEST_EMAIL_URL"))  # noqa: F405
EMAIL_RETRY_BASE_DELAY = 1.0
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
