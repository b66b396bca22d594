"""Standard Webhooks signatures (https://www.standardwebhooks.com/): verify ``v1`` HMAC-SHA256 over the raw body."""

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

from webhooks.models import SECRET_PREFIX

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


class SignatureError(Exception):
    """The delivery is not authentic (or not verifiable); ``header`` names the header at fault."""

    def __init__(self, header: str, message: str) -> None:
        super().__init__(message)
        self.header = header
        self.message = message


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret: the base64-decoded part after the prefix."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(encoded + "==")  # as the reference library does: unpadded secrets decode too


def sign(*, secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of a delivery (what a sender puts in webhook-signature)."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    *, secrets: Iterable[str], headers: Mapping[str, str], body: bytes, tolerance: int, now: float | None = None
) -> None:
    """Raise SignatureError unless one ``v1`` signature in the header matches one of ``secrets``.

    The timestamp must lie within ``tolerance`` seconds of now in either direction (replays and clock games).
    """
    webhook_id = headers.get(ID_HEADER) or ""
    raw_timestamp = headers.get(TIMESTAMP_HEADER) or ""
    raw_signatures = headers.get(SIGNATURE_HEADER) or ""
    for header, value in (
        (ID_HEADER, webhook_id),
        (TIMESTAMP_HEADER, raw_timestamp),
        (SIGNATURE_HEADER, raw_signatures),
    ):
        if not value:
            raise SignatureError(header, "This header is required.")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise SignatureError(TIMESTAMP_HEADER, "Must be a Unix time in whole seconds.") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError(TIMESTAMP_HEADER, f"More than {tolerance} seconds away from the current time.")
    offered = [
        candidate.partition(",")[2].encode() for candidate in raw_signatures.split(" ") if candidate.startswith("v1,")
    ]
    if not offered:
        raise SignatureError(SIGNATURE_HEADER, "No v1 signature found.")
    for secret in secrets:
        try:
            expected = sign(secret=secret, webhook_id=webhook_id, timestamp=timestamp, body=body)
        except (binascii.Error, ValueError):
            continue  # a broken stored secret verifies nothing
        expected_bytes = expected.partition(",")[2].encode()
        # Compare with every offered signature, without an early exit: timing says nothing about which matched.
        if any([hmac.compare_digest(expected_bytes, signature) for signature in offered]):  # noqa: C419
            return
    raise SignatureError(SIGNATURE_HEADER, "No signature matches.")
