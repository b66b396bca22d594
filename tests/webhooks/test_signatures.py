"""Our verifier and the Standard Webhooks reference library agree, signature for signature."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.webhooks.conftest import sign_delivery
from webhooks.models import new_signing_secret
from webhooks.signatures import SignatureError, sign, verify

SECRET = new_signing_secret()
OTHER = new_signing_secret()


def test_our_signature_is_the_reference_signature():
    at = datetime.now(tz=UTC)
    body = '{"type": "ping", "data": {"ünï": "cödé"}}'

    ours = sign(secret=SECRET, webhook_id="msg_1", timestamp=int(at.timestamp()), body=body.encode())

    assert ours == Webhook(SECRET).sign(msg_id="msg_1", timestamp=at, data=body)
    Webhook(SECRET).verify(body, {"webhook-id": "msg_1", "webhook-timestamp": str(int(at.timestamp())),
                                  "webhook-signature": ours})  # fmt: skip


def test_a_reference_signed_delivery_verifies_and_any_one_of_several_signatures_may_match():
    delivery = sign_delivery(SECRET, {"type": "ping"})
    other = sign_delivery(OTHER, {"type": "ping"}, webhook_id=delivery.webhook_id)
    headers = {**delivery.headers, "webhook-signature": f"v1a,xyz {other.headers['webhook-signature']} "
                                                         f"{delivery.headers['webhook-signature']}"}  # fmt: skip

    verify(secrets=[SECRET], headers=headers, body=delivery.body, tolerance=300)
    Webhook(SECRET).verify(delivery.body, headers)


@pytest.mark.parametrize(
    ("change", "header"),
    [
        (lambda d: d.__setattr__("body", d.body.replace(b"ping", b"pong")), "webhook-signature"),
        (lambda d: d.headers.__setitem__("webhook-id", "msg_other"), "webhook-signature"),
        (lambda d: d.headers.__setitem__("webhook-timestamp", str(int(time.time()) - 1)), "webhook-signature"),
        (
            lambda d: d.headers.__setitem__("webhook-signature", "v2," + d.headers["webhook-signature"][3:]),
            "webhook-signature",
        ),  # fmt: skip
        (lambda d: d.headers.pop("webhook-signature"), "webhook-signature"),
        (lambda d: d.headers.pop("webhook-id"), "webhook-id"),
        (lambda d: d.headers.__setitem__("webhook-timestamp", "soon"), "webhook-timestamp"),
    ],
)
def test_what_the_reference_refuses_we_refuse(change, header):
    delivery = sign_delivery(SECRET, {"type": "ping"}, at=datetime.now(tz=UTC) - timedelta(seconds=30))
    change(delivery)

    with pytest.raises(SignatureError) as refused:
        verify(secrets=[SECRET], headers=delivery.headers, body=delivery.body, tolerance=300)
    assert refused.value.header == header
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(delivery.body, delivery.headers)


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_timestamp_more_than_five_minutes_off_either_way_is_refused(offset):
    delivery = sign_delivery(SECRET, {"type": "ping"}, at=datetime.now(tz=UTC) + offset)

    with pytest.raises(SignatureError, match="seconds away") as refused:
        verify(secrets=[SECRET], headers=delivery.headers, body=delivery.body, tolerance=300)
    assert refused.value.header == "webhook-timestamp"
    with pytest.raises(WebhookVerificationError, match="too (old|new)"):
        Webhook(SECRET).verify(delivery.body, delivery.headers)


def test_any_of_the_sources_secrets_verifies():
    delivery = sign_delivery(OTHER, {"type": "ping"})

    verify(secrets=[SECRET, OTHER], headers=delivery.headers, body=delivery.body, tolerance=300)
    with pytest.raises(SignatureError):
        verify(secrets=[SECRET], headers=delivery.headers, body=delivery.body, tolerance=300)
