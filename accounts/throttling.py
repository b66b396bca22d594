import logging

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


class TenantRateThrottle(SimpleRateThrottle):
    """One budget per tenant, shared by all its users and all web processes (counted in Redis).

    It fails open: when Redis is unreachable the request goes through, because accepting work while the broker is
    down is exactly what the job relay is for.
    """

    scope = "tenant"

    def get_rate(self) -> str:
        return settings.API_TENANT_RATE

    def get_cache_key(self, request, view) -> str:
        tenant_id = getattr(request.user, "tenant_id", None)
        ident = f"t{tenant_id}" if tenant_id else f"ip{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError):
            logger.warning("Throttle skipped: Redis is unreachable")
            return True
