"""`make bench`: our stack against the bare one, side by side in one run (see README "Performance").

Starts gunicorn (2 workers) and one Celery worker at a time against a database and a Redis DB of the bench's own,
runs every figure as the median of several rounds, prints a table and writes bench/results/latest.json.

Environment: BENCH_QUICK=1 (small sizes, fewer rounds), BENCH_ROUNDS, BENCH_SECONDS (per HTTP round),
BENCH_JOBS and BENCH_THROUGHPUT_ROUNDS (throughput), BENCH_LATENCY_JOBS, BENCH_SCALE_LARGE, BENCH_PORT (default 18000),
BENCH_DATABASE_URL (default: DATABASE_URL's server, database "<name>_bench"; SQLite: var/bench.sqlite3),
BENCH_REDIS_URL (default: REDIS_URL's server, DB 13), BENCH_GUNICORN_EXTRA (more gunicorn arguments, for both sides:
to try a server setting). The bench empties its own tables and queues, nothing else.
"""

import contextlib
import json
import logging
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_DIR / "bench" / "results"
BIN = Path(sys.executable).parent
logger = logging.getLogger("bench")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


QUICK = os.environ.get("BENCH_QUICK") == "1"
ROUNDS = _env_int("BENCH_ROUNDS", 2 if QUICK else 5)
SECONDS = float(os.environ.get("BENCH_SECONDS") or (2 if QUICK else 4))
CONNECTIONS = _env_int("BENCH_CONNECTIONS", 4)
THROUGHPUT_JOBS = _env_int("BENCH_JOBS", 500 if QUICK else 5000)
THROUGHPUT_ROUNDS = _env_int("BENCH_THROUGHPUT_ROUNDS", 1 if QUICK else 3)
THROUGHPUT_BUDGET_SECONDS = _env_int("BENCH_THROUGHPUT_BUDGET", 150)  # no further round of ours after this
LATENCY_JOBS = _env_int("BENCH_LATENCY_JOBS", 100 if QUICK else 500)
REPORT_USERS = 1000
REPORT_ROUNDS = _env_int("BENCH_REPORT_ROUNDS", 1 if QUICK else 3)
SCALE_SMALL = 10_000
PORT = _env_int("BENCH_PORT", 18000)
BASE_URL = f"http://127.0.0.1:{PORT}"
EMAIL_BODY = {"to_email": "bench@example.com", "subject": "Bench", "body": "Hello from the bench."}


# --- where the bench runs ---------------------------------------------------------------------------------------------


def bench_database_url() -> str:
    if os.environ.get("BENCH_DATABASE_URL"):
        return os.environ["BENCH_DATABASE_URL"]
    source = os.environ.get("DATABASE_URL")
    if not source or source.startswith("sqlite"):
        return f"sqlite:///{PROJECT_DIR / 'var' / 'bench.sqlite3'}"
    parts = urlsplit(source)
    name = parts.path.lstrip("/")
    name = name if name.endswith("bench") else f"{name}_bench"
    return urlunsplit(parts._replace(path=f"/{name}"))


def bench_redis_url() -> str:
    if os.environ.get("BENCH_REDIS_URL"):
        return os.environ["BENCH_REDIS_URL"]
    parts = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    return urlunsplit(parts._replace(path="/13"))


def ensure_postgres_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def configure_environment() -> dict:
    database_url, redis_url = bench_database_url(), bench_redis_url()
    os.environ.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DJANGO_SETTINGS_MODULE="bench.settings",
        PYTHONPATH=str(PROJECT_DIR),
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.pop("CELERY_BROKER_WRITE_URL", None)
    os.environ.pop("EMAIL_URL", None)
    os.environ.pop("BENCH_UNFLUSHED_COMMIT", None)  # the diagnostic server's alone (figure_enqueue), never every side's
    if database_url.startswith("postgres"):
        ensure_postgres_database(database_url)
    else:
        (PROJECT_DIR / "var").mkdir(exist_ok=True)
    return {"database": _redact(database_url), "redis": _redact(redis_url)}


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urlunsplit(parts)


# --- processes --------------------------------------------------------------------------------------------------------


def _stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this bench started (start_new_session)
        proc.wait(10)


# The process groups of the gunicorn servers running now (each starts a session of its own): cpu_seconds' "web".
WEB_GROUPS: set[int] = set()


@contextmanager
def web_server(port: int = PORT, **env: str):
    """gunicorn with 2 sync workers, as in the Procfile (its ``--config`` too; minus the access log), on BENCH_PORT (or
    ``port``)."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        # Its health check would pass on that server, and the figures would be another code's (a run left over).
        raise RuntimeError(f"port {port} is already taken (a gunicorn left over?); set BENCH_PORT or stop it")
    log = open(RESULTS_DIR / "gunicorn.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [BIN / "gunicorn", "config.wsgi:application", "--config", "python:config.gunicorn",
         "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--timeout", "30", "--no-control-socket",  # gunicorn's one per user would be another server's (make run's)
         *shlex.split(os.environ.get("BENCH_GUNICORN_EXTRA", ""))],
        cwd=PROJECT_DIR, stdout=log, stderr=log, start_new_session=True, env={**os.environ, **env},
    )  # fmt: skip
    WEB_GROUPS.add(proc.pid)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not come up; see bench/results/gunicorn.log")
            time.sleep(0.2)
        yield proc
    finally:
        WEB_GROUPS.discard(proc.pid)
        _stop(proc)
        log.close()


CPU_PARTS = ("web", "database", "redis", "load")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each part of the stack, read from /proc (Linux; {} elsewhere): "web" the bench's
    gunicorn servers, "database" every PostgreSQL process (the whole server: its WAL writer too), "redis" the server at
    REDIS_URL's port, "load" this process and the children it has waited for (wrk). A process that ends between two
    readings is not counted; these are long-lived."""
    if not Path("/proc/self/stat").exists():
        return {}
    redis_port = str(urlsplit(os.environ.get("REDIS_URL", "")).port or 6379)
    ticks = os.sysconf("SC_CLK_TCK")
    parts = dict.fromkeys(CPU_PARTS, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) in WEB_GROUPS:  # fields[2]: the process group
                part = "web"
            elif name == "postgres":
                part = "database"
            elif name == "redis-server" and f":{redis_port}" in (entry / "cmdline").read_text():
                part = "redis"
            else:
                continue
        except (OSError, ValueError):
            continue  # gone meanwhile
        parts[part] += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        parts["load"] += usage.ru_utime + usage.ru_stime
    return parts


@contextmanager
def celery_worker(name: str, **env: str):
    """One Celery worker with the Procfile's settings (prefork, 2 children, recycled), on the default queue."""
    from config.celery import app

    hostname = f"bench-{name}-{os.getpid()}@localhost"
    log = open(RESULTS_DIR / f"worker-{name}.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [BIN / "celery", "-A", "config", "worker", "--loglevel=WARNING", "--queues=default", "--concurrency=2",
         "--max-tasks-per-child=1000", "--max-memory-per-child=512000", f"--hostname={hostname}"],
        cwd=PROJECT_DIR, stdout=log, stderr=log, start_new_session=True, env=os.environ | env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[hostname], timeout=0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {name} worker did not come up; see bench/results/worker-{name}.log")
        time.sleep(1)  # let the start-up task (publish pending jobs) pass
        yield hostname
    finally:
        _stop(proc)
        log.close()


# --- data -------------------------------------------------------------------------------------------------------------

BENCH_TABLES = ("jobs_idempotencykey", "notifications_outboundemail", "reports_report", "jobs_job")


def reset_tables() -> None:
    from django.db import connection

    from config.celery import app

    tables = [*BENCH_TABLES, "django_celery_results_taskresult"]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")
    app.control.purge()


def bench_tenant() -> tuple[int, int, str]:
    from accounts.services import tenant_user_create

    user, token = tenant_user_create(tenant_name="Bench", email="bench@example.com", password="bench-password-1")
    return user.tenant_id, user.pk, token


def seed_jobs(*, tenant_id: int, user_id: int, upto: int, using: str = "default") -> float:
    """Bring the job and result tables of database ``using`` to ``upto`` finished jobs of the bench tenant; return
    the seconds it took."""
    from django.db import connections

    from jobs.models import Job

    connection = connections[using]
    have = Job.objects.using(using).count()
    if have >= upto:
        return 0.0
    started = time.monotonic()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            ident = "md5('bench' || g)::uuid::text"
            series = "FROM generate_series(%(first)s, %(last)s) AS g"
            ago = "now() - make_interval(secs => g)"
            cursor.execute(
                f"INSERT INTO jobs_job (task_id, tenant_id, user_id, kind, task_name, kwargs, accepted_at, "
                f"published_at, publish_count, run_count) SELECT {ident}, %(tenant)s, %(user)s, 'send_email', "
                f"'notifications.send_email', '{{\"email_id\": 0}}'::jsonb, {ago}, {ago}, 1, 1 {series}",
                {"tenant": tenant_id, "user": user_id, "first": have + 1, "last": upto},
            )
            cursor.execute(
                "INSERT INTO django_celery_results_taskresult (task_id, status, task_name, content_type, "
                "content_encoding, result, date_created, date_started, date_done, worker) "
                f"SELECT {ident}, 'SUCCESS', 'notifications.send_email', 'application/json', 'utf-8', "
                f'\'{{"email_id": 0, "status": "sent"}}\', {ago}, {ago}, {ago}, \'bench@localhost\' {series}',
                {"first": have + 1, "last": upto},
            )
            # Settle what a million fresh rows leave behind (autovacuum, hint bits, dirty pages) before measuring,
            # so the large side is not timed against PostgreSQL catching up: a table that size in service is vacuumed.
            cursor.execute("VACUUM (ANALYZE) jobs_job")
            cursor.execute("VACUUM (ANALYZE) django_celery_results_taskresult")
            cursor.execute("CHECKPOINT")
        else:
            series = "WITH RECURSIVE g(x) AS (SELECT %s UNION ALL SELECT x + 1 FROM g WHERE x < %s) "
            ident = "printf('bench-%%012d', x)"
            ago = "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || x || ' seconds')"
            cursor.execute(
                f"{series} INSERT INTO jobs_job (task_id, tenant_id, user_id, kind, task_name, kwargs, accepted_at, "
                f"published_at, publish_count, run_count) SELECT {ident}, %s, %s, 'send_email', "
                f"'notifications.send_email', '{{\"email_id\": 0}}', {ago}, {ago}, 1, 1 FROM g",
                [have + 1, upto, tenant_id, user_id],
            )
            cursor.execute(
                f"{series} INSERT INTO django_celery_results_taskresult (task_id, status, task_name, content_type, "
                "content_encoding, result, date_created, date_started, date_done, worker) "
                f"SELECT {ident}, 'SUCCESS', 'notifications.send_email', 'application/json', 'utf-8', "
                f'\'{{"email_id": 0, "status": "sent"}}\', {ago}, {ago}, {ago}, \'bench@localhost\' FROM g',
                [have + 1, upto],
            )
            cursor.execute("ANALYZE")
    return time.monotonic() - started


def seeded_task_id() -> str:
    """A finished job of the bench tenant with its result row: what the status figures look up."""
    from jobs.models import Job

    return Job.objects.filter(result__status="SUCCESS").order_by("pk").values_list("task_id", flat=True)[0]


# --- figures ----------------------------------------------------------------------------------------------------------


def median_of(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def http_side(url: str, **request) -> dict:
    from bench.loadgen import run_load

    before = cpu_seconds()
    result = run_load(url, seconds=SECONDS, connections=CONNECTIONS, **request)
    after = cpu_seconds()
    if result.errors:
        # A failing side answers fast and would pass for a quick one: no figure is better than a false one.
        raise SystemExit(f"bench: {result.errors} of {result.requests} requests to {url} failed (non-2xx or socket "
                         "errors); see the server logs above")  # fmt: skip
    cpu = {part: (after[part] - before[part]) * 1000 / max(result.requests, 1) for part in before}
    return {"rps": result.requests_per_s, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
            "requests": result.requests, "errors": result.errors, "cpu_ms_per_request": cpu}  # fmt: skip


def http_rounds(name: str, sides: dict[str, dict], diagnostic: dict[str, dict] | None = None) -> dict:
    """Load each side (``{"url", "request"}``) in rounds that alternate them, each round starting with the next side,
    so drift on the machine and what one side leaves behind touch all; each side's medians and its rounds.

    The ``diagnostic`` sides come last in every round, after a pause for what they leave behind (commits not yet
    flushed), so that they change nothing for the figures proper.
    """
    from bench.loadgen import run_load

    diagnostic = diagnostic or {}
    for side in [*sides.values(), *diagnostic.values()]:  # warm-up: connections, lazy imports
        run_load(side["url"], seconds=1, connections=CONNECTIONS, **side.get("request", {}))
    rounds: dict[str, list[dict]] = {label: [] for label in [*sides, *diagnostic]}
    labels = list(sides)
    for number in range(ROUNDS):
        if number and diagnostic:
            time.sleep(1)  # PostgreSQL's WAL writer flushes an unflushed commit within 0.6 s
        order = labels[number % len(labels) :] + labels[: number % len(labels)]  # each side first in turn
        for label in [*order, *diagnostic]:
            side = sides.get(label) or diagnostic[label]
            rounds[label].append(http_side(side["url"], **side.get("request", {})))
            _progress(f"{name} round {number + 1}/{ROUNDS} {label}: {rounds[label][-1]['rps']:.0f} req/s")
    return {
        label: {
            "rps": median_of(got, "rps"),
            "p50_ms": median_of(got, "p50_ms"),
            "p99_ms": median_of(got, "p99_ms"),
            "errors": sum(r["errors"] for r in got),
            # Each part's median over the rounds: where a request's CPU time goes, on this side.
            "cpu_ms_per_request": {
                part: statistics.median(r["cpu_ms_per_request"][part] for r in got)
                for part in got[0]["cpu_ms_per_request"]
            },
            "rounds": got,
        }
        for label, got in rounds.items()
    }


def http_pair(name: str, ours: dict, bare: dict, stock: dict | None = None, **diagnostic: dict | None) -> dict:
    """``http_rounds`` of ours, bare, the stock floor and ours changed for a diagnostic (``uncached=``: without the
    local cache; ``unflushed=``: without waiting for the commit's flush to disk), when given, and the ratios to bare
    (the target), to stock (how much of the gap any durable design pays) and of each diagnostic side to bare."""
    sides = {"ours": ours, "bare": bare} | ({"stock": stock} if stock else {})
    out = http_rounds(name, sides, {label: side for label, side in diagnostic.items() if side})
    out["ratio"] = out["ours"]["rps"] / out["bare"]["rps"]
    out["p99_ratio"] = out["ours"]["p99_ms"] / out["bare"]["p99_ms"]
    if stock:
        out["stock_ratio"] = out["ours"]["rps"] / out["stock"]["rps"]
    for label, side in diagnostic.items():
        if side:
            out[f"{label}_ratio"] = out[label]["rps"] / out["bare"]["rps"]
    return out


def figure_enqueue(token: str) -> dict:
    """On PostgreSQL, the same requests also go to a second server whose commits do not wait for the flush to disk
    (``synchronous_commit=off``, bench.settings): not durable, so never ours to run, but what it gains shows how much
    of the gap is that wait."""
    from django.db import connection

    from config.celery import app

    auth = {"Authorization": f"Token {token}"}
    request = {"method": "POST", "body": EMAIL_BODY, "headers": auth}
    unflushed_port = PORT + 2
    with contextlib.ExitStack() as stack:
        unflushed = None
        if connection.vendor == "postgresql":
            try:
                stack.enter_context(web_server(unflushed_port, BENCH_UNFLUSHED_COMMIT="1"))
                unflushed = {"url": f"http://127.0.0.1:{unflushed_port}/api/send-email/", "request": request}
            except RuntimeError as exc:  # a diagnostic: the figure goes on without it
                _progress(f"enqueue: no unflushed side ({exc})")
        out = http_pair(
            "enqueue",
            {"url": f"{BASE_URL}/api/send-email/", "request": request},
            {"url": f"{BASE_URL}/bench/bare-enqueue/", "request": {"method": "POST", "body": {}}},
            {"url": f"{BASE_URL}/bench/stock-enqueue/", "request": {"method": "POST", "body": {}, "headers": auth}},
            unflushed=unflushed,
        )
    app.control.purge()  # nobody consumed what was published
    return out | {"target": 0.7, "passed": out["ratio"] >= 0.7}


def figure_status(token: str, task_id: str) -> dict:
    """Ours answers a repeated poll from the web process's memory (jobs.localcache); the same requests to a second
    server with the cache off show what each first poll, and each poll after a change, costs."""
    auth = {"headers": {"Authorization": f"Token {token}"}}
    with web_server(PORT + 1, JOBS_LOCAL_CACHE_SECONDS="0"):
        out = http_pair(
            "status",
            {"url": f"{BASE_URL}/api/tasks/{task_id}/", "request": auth},
            {"url": f"{BASE_URL}/bench/bare-status/{task_id}/"},
            {"url": f"{BASE_URL}/bench/stock-status/{task_id}/", "request": auth},
            uncached={"url": f"http://127.0.0.1:{PORT + 1}/api/tasks/{task_id}/", "request": auth},
        )
    return out | {"target": 0.8, "passed": out["ratio"] >= 0.8}


def _wait(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.25)


@contextmanager
def consumer_paused(hostname: str):
    """Fill the queue while the worker takes nothing; it starts on the whole backlog when the block ends."""
    from config.celery import app

    app.control.cancel_consumer("default", destination=[hostname], reply=True)
    yield
    app.control.add_consumer("default", destination=[hostname], reply=True)


def throughput_ours(*, tenant_id: int, user_id: int, hostname: str, kind: str) -> dict:
    """``kind`` "tracked": the tracked no-op job (bench.tracked); "email": send_email jobs (dummy email backend)."""
    from django.db import transaction
    from django.db.models import Max, Min
    from django.utils import timezone
    from django_celery_results.models import TaskResult

    from jobs.services import job_enqueue
    from notifications.services import email_request

    since = timezone.now()
    with consumer_paused(hostname), transaction.atomic():
        for i in range(THROUGHPUT_JOBS):
            if kind == "tracked":
                job_enqueue(task_name="bench.tracked_noop", kind="bench_noop", tenant_id=tenant_id, user_id=user_id)
            else:
                email_request(tenant_id=tenant_id, user_id=user_id, to_email=f"bench{i}@example.com",
                              subject="Bench", body="Throughput.")  # fmt: skip
    task_name = "bench.tracked_noop" if kind == "tracked" else "notifications.send_email"
    done = TaskResult.objects.filter(date_done__gte=since, task_name=task_name)
    _wait(lambda: done.filter(status__in=["SUCCESS", "FAILURE"]).count() >= THROUGHPUT_JOBS, timeout=600,
          what="our jobs")  # fmt: skip
    failed = done.filter(status="FAILURE").count()
    span = done.aggregate(first=Min("date_done"), last=Max("date_done"))
    seconds = (span["last"] - span["first"]).total_seconds()
    return {"tasks_per_s": (THROUGHPUT_JOBS - 1) / seconds, "seconds": seconds, "failed": failed}


def throughput_bare(*, hostname: str) -> dict:
    import redis

    from bench.bare import noop

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    with consumer_paused(hostname):
        ids = [noop.delay().id for _ in range(THROUGHPUT_JOBS)]
    keys = [f"celery-task-meta-{task_id}" for task_id in ids]

    def metas() -> list[dict]:
        found = []
        for start in range(0, len(keys), 1000):
            found += [json.loads(raw) for raw in client.mget(keys[start : start + 1000]) if raw]
        return [m for m in found if m.get("status") in ("SUCCESS", "FAILURE")]

    _wait(lambda: len(metas()) >= THROUGHPUT_JOBS, timeout=600, what="bare tasks")
    finished = metas()
    times = sorted(datetime.fromisoformat(m["date_done"]) for m in finished)
    seconds = (times[-1] - times[0]).total_seconds()
    client.delete(*keys)
    failed = sum(m["status"] == "FAILURE" for m in finished)
    return {"tasks_per_s": (THROUGHPUT_JOBS - 1) / seconds, "seconds": seconds, "failed": failed}


def figure_throughput(*, tenant_id: int, user_id: int) -> dict:
    """Our tracked no-op jobs against bare no-op tasks (the target), plus one round of email jobs beside them."""
    rounds: dict[str, list[dict]] = {"ours": [], "bare": [], "ours_email": []}
    began = time.monotonic()
    with celery_worker("ours") as hostname:
        for number in range(THROUGHPUT_ROUNDS):
            rounds["ours"].append(throughput_ours(tenant_id=tenant_id, user_id=user_id, hostname=hostname,
                                                  kind="tracked"))  # fmt: skip
            _progress(f"throughput round {number + 1} ours: {rounds['ours'][-1]['tasks_per_s']:.0f} tasks/s")
            if time.monotonic() - began > THROUGHPUT_BUDGET_SECONDS:
                break  # a slow machine: fewer rounds rather than a bench that runs for half an hour
        rounds["ours_email"].append(throughput_ours(tenant_id=tenant_id, user_id=user_id, hostname=hostname,
                                                    kind="email"))  # fmt: skip
        _progress(f"throughput email jobs: {rounds['ours_email'][-1]['tasks_per_s']:.0f} tasks/s")
    with celery_worker("bare", BENCH_RESULT_BACKEND=os.environ["REDIS_URL"]) as hostname:
        for number in range(len(rounds["ours"])):
            rounds["bare"].append(throughput_bare(hostname=hostname))
            _progress(f"throughput round {number + 1} bare: {rounds['bare'][-1]['tasks_per_s']:.0f} tasks/s")
    out = {label: {"tasks_per_s": median_of(r, "tasks_per_s"), "rounds": r} for label, r in rounds.items()}
    out["jobs_per_round"] = THROUGHPUT_JOBS
    out["ratio"] = out["ours"]["tasks_per_s"] / out["bare"]["tasks_per_s"]
    out["email_ratio"] = out["ours_email"]["tasks_per_s"] / out["bare"]["tasks_per_s"]  # one round: indicative
    out["failed"] = sum(r["failed"] for side in rounds.values() for r in side)  # a failed task is not throughput
    return out | {"target": 0.6, "passed": out["ratio"] >= 0.6 and out["failed"] == 0}


def latency_side(enqueue) -> dict:
    """Enqueue one job at a time on an idle worker; accepted = the enqueue call begins, started = task_prerun.

    Idle: the worker has acknowledged the previous job (its message left the broker's ``unacked`` hash: both sides
    ack late), not merely finished running it, so that no side's next job waits behind the last one's bookkeeping
    (storing its result, the ack): ours stores more, and without this the figure measured that too."""
    import redis

    from bench.loadgen import percentile

    client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=None)  # BLPOP waits up to 60 s itself
    # What a worker killed in an earlier run left unacknowledged (the bench's own Redis database) would otherwise
    # never leave the hash in this run.
    client.delete("bench:started", "bench:done", "unacked", "unacked_index")
    samples, calls = [], []
    for _ in range(LATENCY_JOBS):
        accepted = time.time()
        task_id = enqueue()
        calls.append((time.time() - accepted) * 1000)
        while True:
            popped = client.blpop(["bench:started"], timeout=60)
            if popped is None:
                raise RuntimeError("a latency probe job did not start within 60 s")
            started_id, _, at = popped[1].decode().partition(" ")
            if started_id == task_id:
                break
        if client.blpop(["bench:done"], timeout=60) is None:
            raise RuntimeError("a latency probe job did not finish within 60 s")
        deadline = time.monotonic() + 60
        while client.hlen("unacked"):  # kombu's hash of delivered, unacknowledged messages
            if time.monotonic() > deadline:
                raise RuntimeError("a latency probe job was not acknowledged within 60 s")
            time.sleep(0.0002)
        samples.append((float(at) - accepted) * 1000)
    samples.sort()
    calls.sort()
    return {"p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99), "jobs": LATENCY_JOBS,
            "enqueue_call_p50_ms": percentile(calls, 50)}  # fmt: skip


def figure_latency(*, tenant_id: int, user_id: int) -> dict:
    from bench.bare import noop
    from notifications.services import email_request

    def ours() -> str:
        email = email_request(tenant_id=tenant_id, user_id=user_id, to_email="latency@example.com",
                              subject="Bench", body="Latency.")  # fmt: skip
        return email.job_id

    with celery_worker("ours-latency", BENCH_TRACE="1"):
        our = latency_side(ours)
    _progress(f"latency ours: p50 {our['p50_ms']:.1f} ms")
    with celery_worker("bare-latency", BENCH_TRACE="1", BENCH_RESULT_BACKEND=os.environ["REDIS_URL"]):
        bare = latency_side(lambda: noop.delay().id)
    _progress(f"latency bare: p50 {bare['p50_ms']:.1f} ms")
    ratio = our["p50_ms"] / bare["p50_ms"]
    return {"ours": our, "bare": bare, "ratio": ratio, "target": 2.0, "passed": ratio <= 2.0}


def report_tenant() -> int:
    from django.db import transaction

    from accounts.models import Tenant, User

    tenant, _ = Tenant.objects.get_or_create(slug="bench-reports", defaults={"name": "Bench Reports"})
    if User.objects.filter(tenant=tenant).count() != REPORT_USERS:
        with transaction.atomic():
            User.objects.filter(tenant=tenant).delete()
            User.objects.bulk_create(
                User(
                    email=f"user{i:04d}@reports.bench.example.com",
                    tenant=tenant,
                    first_name=f"First{i}",
                    last_name=f"Last{i}",
                    is_staff=i % 20 == 0,
                    is_active=i % 7 != 0,
                    password="!",
                )  # fmt: skip
                for i in range(REPORT_USERS)
            )
    return tenant.pk


def report_html(tenant_id: int) -> Path:
    """The exact HTML our users report hands WeasyPrint, caught on the way, for the bare side."""
    from unittest import mock

    from django.test import override_settings

    from reports import rendering
    from reports.models import Report

    caught = {}
    real_render = rendering.render_to_string

    def catch(template, context):
        caught["html"] = real_render(template, context)
        raise _Caught

    report = Report(tenant_id=tenant_id, report_type=Report.Type.USERS, pk=0)
    whole = override_settings(REPORTS_RENDER_PROCESSES=1)  # the whole document, as one HTML
    with whole, mock.patch.object(rendering, "render_to_string", catch), contextlib.suppress(_Caught):
        rendering.users_pdf(report=report, progress=lambda *args: None, raise_if_canceled=lambda: None)
    path = RESULTS_DIR / "report-users-1000.html"
    path.write_text(caught["html"])
    return path


class _Caught(Exception):
    pass


def _probe(kind: str, arg: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.report_probe", kind, arg],
        cwd=PROJECT_DIR, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return json.loads(completed.stdout.strip().splitlines()[-1])


def figure_reports() -> dict:
    from reports.services import report_request

    tenant_id = report_tenant()
    html = report_html(tenant_id)
    rounds: dict[str, list[dict]] = {"ours": [], "bare": []}
    for number in range(REPORT_ROUNDS):
        report = report_request(tenant_id=tenant_id, user_id=None, report_type="users")
        sides = [("ours", str(report.pk)), ("bare", str(html))]
        for kind, arg in sides if number % 2 == 0 else reversed(sides):  # each side first in every other round
            rounds[kind].append(_probe(kind, arg))
        _progress(
            f"reports round {number + 1}: ours {rounds['ours'][-1]['seconds']:.2f} s, "
            f"bare {rounds['bare'][-1]['seconds']:.2f} s"
        )
    from config.celery import app

    app.control.purge()
    out = {}
    for label, r in rounds.items():
        out[label] = {
            "seconds": median_of(r, "seconds"),
            "cpu_seconds": median_of(r, "cpu_seconds"),
            "peak_mib": median_of(r, "peak_mib"),
            "growth_mib": statistics.median(x["peak_mib"] - x["before_mib"] for x in r),
            "rounds": r,
        }
    out["users"] = REPORT_USERS
    out["ratio"] = out["ours"]["seconds"] / out["bare"]["seconds"]
    return out | {"target": 1.0, "aim": 0.5, "passed": out["ratio"] < 1.0}


def figure_scale(*, tenant_id: int, user_id: int, token: str, large: int) -> dict:
    """Status (cache off: the database's lookup) and enqueue against two databases at once, one with 10,000 job and
    result rows and a copy grown to ``large``, each behind its own server, rounds alternating between them: the two
    sizes are timed side by side, as the other figures are, rather than minutes apart."""
    from config.celery import app

    reset_tables()
    seeded = {"small": seed_jobs(tenant_id=tenant_id, user_id=user_id, upto=SCALE_SMALL)}
    task_id = seeded_task_id()
    with large_database_copy() as (alias, url):
        seeded["large"] = seed_jobs(tenant_id=tenant_id, user_id=user_id, upto=large, using=alias)
        _progress(f"scale: {SCALE_SMALL} and {large} job and result rows (seeded in {seeded['large']:.1f} s)")
        request = {"headers": {"Authorization": f"Token {token}"}}
        enqueue = request | {"method": "POST", "body": EMAIL_BODY}
        servers = {"small": BASE_URL, "large": f"http://127.0.0.1:{PORT + 1}"}
        with (
            web_server(JOBS_LOCAL_CACHE_SECONDS="0"),
            web_server(PORT + 1, DATABASE_URL=url, JOBS_LOCAL_CACHE_SECONDS="0"),
        ):
            measured = {
                "status": http_rounds("scale status", {
                    label: {"url": f"{base}/api/tasks/{task_id}/", "request": request}
                    for label, base in servers.items()
                }),
                "enqueue": http_rounds("scale enqueue", {
                    label: {"url": f"{base}/api/send-email/", "request": enqueue}
                    for label, base in servers.items()
                }),
            }  # fmt: skip
        app.control.purge()
    sizes = {
        label: {
            "rows": SCALE_SMALL if label == "small" else large,
            "seed_seconds": seeded[label],
            **{what: measured[what][label] for what in measured},
        }
        for label in servers
    }
    ratios = {
        f"{what}_{key}": (
            sizes["small"][what]["rps"] / sizes["large"][what]["rps"]
            if key == "time"
            else sizes["large"][what]["p99_ms"] / sizes["small"][what]["p99_ms"]
        )
        for what in ("status", "enqueue")
        for key in ("time", "p99")
    }
    worst = max(ratios["status_time"], ratios["enqueue_time"])
    return {**sizes, "ratios": ratios, "ratio": worst, "target": 1.3, "passed": worst <= 1.3}


@contextmanager
def large_database_copy():
    """A copy of the bench database (its tenant, token and 10,000 rows) as the Django alias ``scale_large``, to grow;
    yields the alias and its URL, and drops the copy afterwards."""
    from django.db import connection, connections

    source = connections.settings["default"]
    alias = "scale_large"
    if connection.vendor == "postgresql":
        name = f"{source['NAME']}_large"
        url = urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}"))
        admin = urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path="/postgres"))

        def admin_sql(sql: str) -> None:
            import psycopg

            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql)

        def drop() -> None:
            admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        def make() -> None:
            connection.close()  # a template must have no other session
            drop()
            admin_sql(f'CREATE DATABASE "{name}" TEMPLATE "{source["NAME"]}"')
    else:
        name = str(Path(source["NAME"]).with_name("bench_large.sqlite3"))
        url = f"sqlite:///{name}"

        def drop() -> None:  # with its journal files: stale ones would be replayed into the next copy
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(name + suffix).unlink(missing_ok=True)

        def make() -> None:
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                if cursor.fetchone()[0]:
                    raise RuntimeError("the bench database is busy: its copy would miss what the WAL holds")
            connection.close()
            drop()
            shutil.copyfile(source["NAME"], name)

    try:
        make()
        connections.settings[alias] = {**source, "NAME": name}
        yield alias, url
    finally:
        if alias in connections.settings:
            connections[alias].close()
            del connections[alias]
            del connections.settings[alias]
        drop()


# --- output -----------------------------------------------------------------------------------------------------------


def _progress(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def _mark(figure: dict) -> str:
    return "ok" if figure.get("passed") else "MISSED"


def _figure(results: dict, name: str) -> dict | None:
    figure = results.get(name)
    return figure if figure and "error" not in figure else None


def _stock_row(name: str, figure: dict) -> list[tuple[str, ...]]:
    """The stock floor's req/s in the bare column, and ours against it."""
    if "stock" not in figure:
        return []
    return [(f"  vs stock {name} req/s", f"{figure['ours']['rps']:.0f}", f"{figure['stock']['rps']:.0f}",
             f"{figure['stock_ratio']:.2f}x", "", "")]  # fmt: skip


def table(results: dict) -> str:
    rows = [("figure", "ours", "bare", "ratio", "target", "")]
    if e := _figure(results, "enqueue"):
        rows += [
            ("enqueue req/s", f"{e['ours']['rps']:.0f}", f"{e['bare']['rps']:.0f}", f"{e['ratio']:.2f}x", ">= 0.7x",
             _mark(e)),
            ("enqueue p99 ms", f"{e['ours']['p99_ms']:.1f}", f"{e['bare']['p99_ms']:.1f}", f"{e['p99_ratio']:.2f}x",
             "", ""),
        ]  # fmt: skip
        rows += _stock_row("enqueue", e)
        if "unflushed" in e:
            rows.append(("  commit unflushed req/s", f"{e['unflushed']['rps']:.0f}", f"{e['bare']['rps']:.0f}",
                         f"{e['unflushed_ratio']:.2f}x", "", "not durable"))  # fmt: skip
    if s := _figure(results, "status"):
        rows += [
            ("status req/s", f"{s['ours']['rps']:.0f}", f"{s['bare']['rps']:.0f}", f"{s['ratio']:.2f}x", ">= 0.8x",
             _mark(s)),
            ("status p99 ms", f"{s['ours']['p99_ms']:.1f}", f"{s['bare']['p99_ms']:.1f}", f"{s['p99_ratio']:.2f}x",
             "", ""),
        ]  # fmt: skip
        rows += _stock_row("status", s)
        if "uncached" in s:
            rows.append(("  cache off status req/s", f"{s['uncached']['rps']:.0f}", f"{s['bare']['rps']:.0f}",
                         f"{s['uncached_ratio']:.2f}x", "", ""))  # fmt: skip
    if t := _figure(results, "throughput"):
        rows.append(("throughput tasks/s", f"{t['ours']['tasks_per_s']:.0f}", f"{t['bare']['tasks_per_s']:.0f}",
                     f"{t['ratio']:.2f}x", ">= 0.6x", _mark(t)))  # fmt: skip
        if "ours_email" in t:
            rows.append(("  email jobs tasks/s", f"{t['ours_email']['tasks_per_s']:.0f}",
                         f"{t['bare']['tasks_per_s']:.0f}", f"{t['email_ratio']:.2f}x", "", ""))  # fmt: skip
    if la := _figure(results, "latency"):
        rows += [
            ("latency p50 ms", f"{la['ours']['p50_ms']:.1f}", f"{la['bare']['p50_ms']:.1f}", f"{la['ratio']:.2f}x",
             "<= 2x", _mark(la)),
            ("latency p99 ms", f"{la['ours']['p99_ms']:.1f}", f"{la['bare']['p99_ms']:.1f}",
             f"{la['ours']['p99_ms'] / la['bare']['p99_ms']:.2f}x", "", ""),
        ]  # fmt: skip
    if r := _figure(results, "reports"):
        rows += [
            ("report 1,000 users s", f"{r['ours']['seconds']:.2f}", f"{r['bare']['seconds']:.2f}",
             f"{r['ratio']:.2f}x", "< 1x (aim 0.5x)", _mark(r)),
            ("report CPU s (all processes)", f"{r['ours']['cpu_seconds']:.2f}", f"{r['bare']['cpu_seconds']:.2f}",
             f"{r['ours']['cpu_seconds'] / r['bare']['cpu_seconds']:.2f}x", "", ""),
            ("report peak PSS MiB", f"{r['ours']['peak_mib']:.0f}", f"{r['bare']['peak_mib']:.0f}",
             f"{r['ours']['peak_mib'] / r['bare']['peak_mib']:.2f}x", "", ""),
            ("report PSS growth MiB", f"{r['ours']['growth_mib']:.0f}", f"{r['bare']['growth_mib']:.0f}",
             f"{r['ours']['growth_mib'] / r['bare']['growth_mib']:.2f}x", "", ""),
        ]  # fmt: skip
    if sc := _figure(results, "scale"):
        small, large = sc["small"], sc["large"]
        for what in ("status", "enqueue"):
            rows.append((f"scale {what} req/s", f"{small[what]['rps']:.0f} @{small['rows']:,}",
                         f"{large[what]['rps']:.0f} @{large['rows']:,}", f"{sc['ratios'][what + '_time']:.2f}x",
                         "<= 1.3x", "ok" if sc["ratios"][what + "_time"] <= 1.3 else "MISSED"))  # fmt: skip
    rows += [(f"{name}: FAILED", figure["error"][:60], "", "", "", "") for name, figure in results.items()
             if isinstance(figure, dict) and "error" in figure]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + cpu_lines(results))


def cpu_lines(results: dict) -> list[str]:
    """Where each HTTP side's request spends CPU, by part of the stack (cpu_seconds), medians over the rounds."""
    lines = []
    for name in ("enqueue", "status"):
        figure = _figure(results, name) or {}
        for side in ("ours", "bare", "stock", "uncached", "unflushed"):
            cpu = figure.get(side, {}).get("cpu_ms_per_request")
            if cpu:
                parts = " + ".join(f"{cpu[part]:.2f}" for part in CPU_PARTS)
                lines.append(f"  {name:<8} {side:<9} {parts} = {sum(cpu.values()):.2f}")
    if lines:
        lines.insert(0, f"\nCPU ms per request ({' + '.join(CPU_PARTS)} = all):")
    return lines


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    where = configure_environment()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.loadgen import tool_name

    call_command("migrate", verbosity=0, interactive=False)
    large = _env_int("BENCH_SCALE_LARGE", 1_000_000 if connection.vendor == "postgresql" else 100_000)
    if QUICK and not os.environ.get("BENCH_SCALE_LARGE"):
        large = 100_000
    reset_tables()
    tenant_id, user_id, token = bench_tenant()
    seed_jobs(tenant_id=tenant_id, user_id=user_id, upto=SCALE_SMALL)
    task_id = seeded_task_id()
    started = time.monotonic()
    results: dict = {
        "meta": {
            "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "quick": QUICK,
            "load_generator": tool_name(),
            "connections": CONNECTIONS,
            "http_rounds": ROUNDS,
            "http_round_seconds": SECONDS,
            "web": "gunicorn, 2 sync workers"
            + (f" {extra}" if (extra := os.environ.get("BENCH_GUNICORN_EXTRA")) else ""),
            "worker": "celery prefork, concurrency 2, prefetch 1, acks late (Procfile settings)",
            "database_vendor": connection.vendor,
            **where,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "scale_large_rows": large,
            "notes": [] if connection.vendor == "postgresql" else [f"SQLite: the large scale size is {large:,} rows"],
        }
    }
    selected = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))

    def wanted(name: str) -> bool:
        return not selected or name in selected

    latest = RESULTS_DIR / "latest.json"
    if selected and latest.exists():
        # A partial run (BENCH_ONLY) updates its figures in the last full result and keeps the others.
        results = json.loads(latest.read_text()) | {"meta": results["meta"]}

    def measure(name: str, figure) -> None:
        if not wanted(name):
            return
        try:
            results[name] = figure() | {"measured_at": datetime.now().astimezone().isoformat(timespec="seconds")}
        except Exception as exc:  # noqa: BLE001 - one broken figure must not lose the others
            logger.exception("Figure %s failed", name)
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        latest.write_text(json.dumps(results, indent=2, default=str))

    if wanted("enqueue") or wanted("status"):
        with web_server():
            measure("enqueue", lambda: figure_enqueue(token))
            measure("status", lambda: figure_status(token, task_id))
    measure("throughput", lambda: figure_throughput(tenant_id=tenant_id, user_id=user_id))
    measure("latency", lambda: figure_latency(tenant_id=tenant_id, user_id=user_id))
    measure("reports", figure_reports)
    measure("scale", lambda: figure_scale(tenant_id=tenant_id, user_id=user_id, token=token, large=large))
    results["meta"]["seconds"] = round(time.monotonic() - started, 1)
    latest.write_text(json.dumps(results, indent=2, default=str))
    sys.stdout.write(
        f"\nLoad generator: {results['meta']['load_generator']}, {CONNECTIONS} connections; medians of {ROUNDS} "
        f"HTTP rounds of {SECONDS:g} s; database {connection.vendor}; {results['meta']['seconds']:.0f} s in all.\n\n"
    )
    sys.stdout.write(table(results) + "\n\nFull figures: bench/results/latest.json\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
