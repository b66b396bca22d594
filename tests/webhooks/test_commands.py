from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.factories import TenantFactory
from tests.webhooks.conftest import post_delivery, sign_delivery
from webhooks.models import WebhookSource

pytestmark = pytest.mark.django_db


def _run(*args) -> list[str]:
    out = StringIO()
    call_command("create_webhook_source", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_create_webhook_source_prints_a_secret_that_signs_deliveries(client):
    lines = _run("billing")

    secret = lines[-1]
    assert secret.startswith("whsec_")
    assert WebhookSource.objects.get(slug="billing").signing_secret == secret
    assert post_delivery(client, sign_delivery(secret, {"type": "ping"})).status_code == 202


def test_running_it_again_shows_the_same_source_and_secret():
    first = _run("crm")[-1]

    again = _run("crm")

    assert again[-1] == first
    assert "exists" in again[0]
    assert WebhookSource.objects.count() == 1


def test_rotate_prints_the_new_secret_and_an_owning_tenant_can_be_named():
    TenantFactory(name="Acme")
    first = _run("acme-shop", "--tenant", "acme")[-1]

    rotated = _run("acme-shop", "--rotate")[-1]

    source = WebhookSource.objects.get(slug="acme-shop")
    assert rotated != first and rotated == source.signing_secret
    assert (source.previous_secret, source.tenant.slug) == (first, "acme")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Not A Slug",), "SLUG"),
        (("",), "SLUG"),  # its deliveries would go to /api/webhooks//, which is no URL
        (("a" * 101,), "at most 100"),
        (("x", "--tenant", "nobody"), "--tenant"),
    ],
)
def test_bad_arguments_are_refused(args, message):
    with pytest.raises(CommandError, match=message):
        _run(*args)
    assert not WebhookSource.objects.exists()
