import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()


def _web_publish_limits() -> None:
    """Publishes from a web process give up sooner than a worker's (settings.WEB_BROKER_SOCKET_TIMEOUT): set before
    the first publish opens the broker connection pool."""
    from django.conf import settings

    from config.celery import app

    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "socket_timeout": settings.WEB_BROKER_SOCKET_TIMEOUT,
    }
    app.conf.task_publish_retry_policy = {
        **app.conf.task_publish_retry_policy,
        "max_retries": settings.WEB_PUBLISH_MAX_RETRIES,
    }


_web_publish_limits()
