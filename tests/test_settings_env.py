"""The settings read the environment the way the contract says, blank values included."""

import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR


def settings_under(**env: str) -> dict:
    """Import config.settings in a fresh interpreter with this environment; return a few values."""
    code = (
        "import json, config.settings as s; print(json.dumps({'db': s.DATABASES['default']['ENGINE'], "
        "'hosts': s.ALLOWED_HOSTS, 'redis': s.REDIS_URL, 'broker': s.CELERY_BROKER_URL, "
        "'broker_write': s.CELERY_BROKER_WRITE_URL, 'email': s.EMAIL_BACKEND, "
        "'email_tls': getattr(s, 'EMAIL_USE_TLS', False), 'debug': s.DEBUG}))"
    )
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "EMAIL_URL", "DEBUG", "CELERY_BROKER_URL", "CELERY_BROKER_WRITE_URL")
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, env={**base, "SECRET_KEY": "x", **env},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def test_unset_and_blank_mean_the_defaults():
    for blank in ({}, {"DATABASE_URL": "", "REDIS_URL": "", "EMAIL_URL": "", "ALLOWED_HOSTS": ""}):
        values = settings_under(**blank)
        assert values["db"] == "django.db.backends.sqlite3"
        assert values["redis"] == values["broker"] == values["broker_write"] == "redis://127.0.0.1:6379/0"
        assert values["email"] == "django.core.mail.backends.console.EmailBackend"
        assert "localhost" in values["hosts"]
        assert values["debug"] is False


def test_configured_values_are_taken():
    values = settings_under(
        DATABASE_URL="postgres://u:p@db:5432/app", REDIS_URL="redis://cache:6379/2", CELERY_BROKER_URL="amqp://mq//",
        EMAIL_URL="smtp+tls://user:pw@mail:587", ALLOWED_HOSTS="a.example.com, b.example.com",
    )  # fmt: skip

    assert values["db"] == "config.postgresql"  # Django's backend with a cheaper health check
    assert (values["redis"], values["broker"]) == ("redis://cache:6379/2", "amqp://mq//")
    assert values["broker_write"] == "amqp://mq//"  # publishes follow the broker unless set apart
    assert values["email"] == "django.core.mail.backends.smtp.EmailBackend" and values["email_tls"] is True
    assert values["hosts"] == ["a.example.com", "b.example.com"]


def test_publishes_can_go_to_a_broker_url_of_their_own():
    values = settings_under(CELERY_BROKER_URL="redis://mq:6379/1", CELERY_BROKER_WRITE_URL="redis://primary:6379/1")

    assert (values["broker"], values["broker_write"]) == ("redis://mq:6379/1", "redis://primary:6379/1")


def test_without_a_secret_key_and_debug_off_startup_fails():
    base = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    result = subprocess.run(
        [sys.executable, "-c", "import config.settings"], cwd=PROJECT_DIR, env=base, capture_output=True, text=True
    )

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize("debug", ["1", "true"])
def test_debug_on_invents_a_development_key(debug):
    assert settings_under(DEBUG=debug, SECRET_KEY="")["debug"] is True
