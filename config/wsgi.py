import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()


def _web_redis_limits() -> None:
    """Publishes from a web process give up sooner than a worker's (settings.WEB_BROKER_SOCKET_TIMEOUT), and a Redis
    that just failed is not asked again for a while (jobs.redis_client): set before the first publish opens the broker
    connection pool."""
    from django.conf import settings

    from config.celery import app
    from jobs import redis_client

    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "socket_timeout": settings.WEB_BROKER_SOCKET_TIMEOUT,
    }
    app.conf.task_publish_retry_policy = {
        **app.conf.task_publish_retry_policy,
        "max_retries": settings.WEB_PUBLISH_MAX_RETRIES,
    }
    redis_client.BACKOFF_SECONDS = settings.WEB_REDIS_BACKOFF_SECONDS


_web_redis_limits()
