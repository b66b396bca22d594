"""The load generator: ``wrk`` when it is installed (more accurate on a small machine), else Python threads with
http.client. Whichever is picked is used for ours and for the bare baseline alike, and named in the output."""

import http.client
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx answers and socket errors


def tool_name() -> str:
    return "wrk" if shutil.which("wrk") else "python-threads (http.client)"


def run_load(
    url: str, *, method: str = "GET", headers: dict | None = None, body: dict | None = None, seconds: float,
    connections: int,
) -> LoadResult:  # fmt: skip
    if shutil.which("wrk"):
        return _wrk(url, method=method, headers=headers or {}, body=body, seconds=seconds, connections=connections)
    return _threads(url, method=method, headers=headers or {}, body=body, seconds=seconds, connections=connections)


LUA = """
wrk.method = {method}
wrk.body = {body}
{headers}
"""


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def _wrk(url, *, method, headers, body, seconds, connections) -> LoadResult:
    all_headers = dict(headers)
    payload = ""
    if body is not None:
        payload = json.dumps(body)
        all_headers["Content-Type"] = "application/json"
    lua = LUA.format(
        method=_lua_string(method),
        body=_lua_string(payload) if payload else "nil",
        headers="\n".join(f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in all_headers.items()),
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        completed = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        )
    finally:
        Path(script.name).unlink()
    return _parse_wrk(completed.stdout)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _parse_wrk(out: str) -> LoadResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s|m)\b", out)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s|m)\b", out)
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(n) for n in match.groups())
    return LoadResult(rps, _ms(*p50.groups()), _ms(*p99.groups()), requests, errors)


def _threads(url, *, method, headers, body, seconds, connections) -> LoadResult:
    parts = urlsplit(url)
    payload = json.dumps(body).encode() if body is not None else None
    all_headers = dict(headers)
    if payload is not None:
        all_headers["Content-Type"] = "application/json"
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    deadline = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                conn.request(method, parts.path, body=payload, headers=all_headers)
                response = conn.getresponse()
                response.read()
                if response.status >= 300:
                    errors[i] += 1
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                continue
            latencies[i].append((time.perf_counter() - started) * 1000)
        conn.close()

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    samples = sorted(x for per in latencies for x in per)
    return LoadResult(
        len(samples) / elapsed, percentile(samples, 50), percentile(samples, 99), len(samples), sum(errors)
    )


def percentile(sorted_samples: list[float], pct: float) -> float:
    if not sorted_samples:
        return float("nan")
    index = min(len(sorted_samples) - 1, max(0, round(pct / 100 * len(sorted_samples) + 0.5) - 1))
    return sorted_samples[index]
