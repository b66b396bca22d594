"""Fetching JSON from an allowed URL, safely: allowlisted hosts, no private addresses, no redirects, bounded size.

The URL is checked when the request is accepted and again by the task right before it connects; the task connects
to the very address it checked (the host name goes in the Host header and TLS SNI), so DNS cannot swap it between
the check and the connection.
"""

import ipaddress
import json
import logging
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.db import transaction
from django.utils import timezone

from jobs.models import Job
from jobs.services import job_enqueue
from webhooks import conf

logger = logging.getLogger(__name__)

FETCH_TASK = "webhooks.fetch_external_data"
FETCH_KIND = "fetch_external_data"
URL_MAX_LENGTH = 2000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchRefused(Exception):
    """The URL may not be fetched (scheme, host, or address); the message says why."""


class FetchUnresolved(FetchRefused):
    """The allowed host's name does not resolve now. The API accepts the fetch anyway (a DNS outage, or a record not
    yet published, should not refuse it for good); the task resolves it again before it connects, and retries."""


class FetchFailed(Exception):
    """The fetch did not produce JSON and trying again would not help."""


class FetchTransientError(Exception):
    """A network error or a 5xx answer: trying again later may work."""


@dataclass(frozen=True)
class FetchTarget:
    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def fetch_target_validate(*, url: str) -> FetchTarget:
    """Check a URL against the fetch policy and resolve its host; raise FetchRefused saying what is wrong
    (FetchUnresolved when only the name's lookup failed)."""
    if not isinstance(url, str) or not url or len(url) > URL_MAX_LENGTH:
        raise FetchRefused(f"Must be a URL of at most {URL_MAX_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FetchRefused("Not a valid URL.") from None
    scheme = parts.scheme.lower()
    allowed_schemes = ("https", "http") if conf.fetch_allow_http() else ("https",)
    if scheme not in allowed_schemes:
        raise FetchRefused(f"The scheme must be {' or '.join(allowed_schemes)}.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise FetchRefused("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise FetchRefused("Credentials in the URL are not allowed.")
    entry = _allowlist_entry_for(host)
    if entry is None:
        raise FetchRefused(f"The host {host!r} is not in the allowed hosts (FETCH_ALLOWED_HOSTS).")
    port = port or (443 if scheme == "https" else 80)
    addresses = _resolve(host, port)
    if not addresses:
        raise FetchUnresolved(f"The host {host!r} could not be resolved.")
    for address in addresses:
        if not _is_public(address) and not _names_address(entry, address):
            raise FetchRefused(
                f"The host {host!r} resolves to a non-public address ({address}); "
                "only addresses named in FETCH_ALLOWED_HOSTS may be private."
            )
    return FetchTarget(url=url, scheme=scheme, host=host, port=port, addresses=tuple(addresses))


def _allowlist_entry_for(host: str) -> str | None:
    """The allowlist entry that lets ``host`` in: the same name, ``*.parent`` for subdomains, or an IP network."""
    host_ip = _ip_or_none(host)
    for entry in conf.fetch_allowed_hosts():
        if entry == host:
            return entry
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return entry
        if host_ip is not None:
            network = _network_or_none(entry)
            if network is not None and host_ip in network:
                return entry
    return None


def _names_address(entry: str, address: IPAddress) -> bool:
    """Whether the allowlist entry names this non-public address explicitly: an IP or network, or ``localhost``."""
    if entry == "localhost":
        return address.is_loopback
    network = _network_or_none(entry)
    return network is not None and address in network


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to (an IP literal resolves to itself)."""
    literal = _ip_or_none(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:  # a label over 63 characters, say: no lookup could ever answer it
        raise FetchRefused(f"The host {host!r} is not a valid host name.") from None
    except socket.gaierror:
        return []
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _ip_or_none(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _network_or_none(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


# --- services ---------------------------------------------------------------------------------------------------------


@transaction.atomic
def external_data_request(*, tenant_id: int, user_id: int | None, url: str) -> Job:
    """Accept a fetch (the URL was validated by the caller) and enqueue it."""
    job = job_enqueue(task_name=FETCH_TASK, kind=FETCH_KIND, tenant_id=tenant_id, user_id=user_id, kwargs={"url": url})
    logger.info("Fetch of %s accepted as job %s (tenant %s)", url, job.task_id, tenant_id)
    return job


def external_data_fetch(*, url: str, attempt: int) -> dict:
    """Fetch JSON from ``url`` once: the result for the task, or FetchRefused / FetchFailed / FetchTransientError."""
    try:
        target = fetch_target_validate(url=url)  # again: the allowlist or DNS may have changed since it was accepted
    except FetchUnresolved as exc:
        raise FetchTransientError(str(exc)) from exc
    except FetchRefused as exc:
        raise FetchFailed(f"Refused: {exc}") from exc
    max_bytes = conf.fetch_max_bytes()
    # trust_env=False: no proxy from the environment, which would connect to a host we did not check.
    with httpx.Client(follow_redirects=False, timeout=conf.fetch_timeout_seconds(), trust_env=False) as client:
        for index, address in enumerate(target.addresses):
            try:
                status_code, body = _get(client, target, address, max_bytes)
                break
            except httpx.ConnectError as exc:
                if index + 1 < len(target.addresses):
                    continue  # the host has more (checked) addresses: try the next, as a browser would
                raise FetchTransientError(_describe(exc)) from exc
            except httpx.TransportError as exc:
                raise FetchTransientError(_describe(exc)) from exc
    try:
        data = json.loads(body, parse_constant=_refuse_constant)  # NaN/Infinity would break the status API's JSON
    except (ValueError, RecursionError):
        raise FetchFailed("The response is not JSON.") from None
    logger.info("Fetched %d bytes of JSON from %s (%s) on attempt %d", len(body), url, address, attempt)
    return {
        "url": url,
        "status_code": status_code,
        "bytes": len(body),
        "attempts": attempt,
        "fetched_at": timezone.now().isoformat(),
        "data": data,
    }


def _get(client: httpx.Client, target: FetchTarget, address: IPAddress, max_bytes: int) -> tuple[int, bytes]:
    """GET the target from this very address; the host name travels in the Host header and TLS SNI."""
    default_port = 443 if target.scheme == "https" else 80
    with client.stream(
        "GET",
        httpx.URL(target.url).copy_with(host=str(address)),
        headers={
            "Host": target.host if target.port == default_port else f"{target.host}:{target.port}",
            "Accept": "application/json",
        },
        extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
    ) as response:
        _check_status(response)
        return response.status_code, _read_capped(response, max_bytes)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _check_status(response: httpx.Response) -> None:
    code = response.status_code
    if code >= 500:
        raise FetchTransientError(f"HTTP {code}")
    if 300 <= code < 400:
        raise FetchFailed(f"HTTP {code}: redirects are not followed (to {response.headers.get('location', '?')}).")
    if code >= 400:
        raise FetchFailed(f"HTTP {code}")


def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailed(f"The response is larger than {max_bytes} bytes.")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchFailed(f"The response is larger than {max_bytes} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
