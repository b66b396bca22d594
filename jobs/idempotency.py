"""The ``Idempotency-Key`` header for POST endpoints: one key, one job, the first answer replayed for 24 h."""

import functools
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.response import Response

from jobs.models import IdempotencyKey

HEADER = "Idempotency-Key"
KEY_MAX_LENGTH = 255


def idempotent(handler):
    """Wrap a DRF ``post`` so that a repeated Idempotency-Key from the same tenant replays the first answer.

    The handler and the key's row share one transaction: if two requests with one key race, the loser's unique
    insert fails, its job is rolled back with it (never published), and it answers with the winner's response.
    """

    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return handler(view, request, *args, **kwargs)
        if not key or len(key) > KEY_MAX_LENGTH or not key.isprintable():
            return Response(
                {HEADER: [f"Must be 1 to {KEY_MAX_LENGTH} printable characters."]}, status=status.HTTP_400_BAD_REQUEST
            )
        tenant_id = request.user.tenant_id
        stored = _stored_response(tenant_id=tenant_id, key=key)
        if stored is not None:
            return _replay(stored, request.path)
        try:
            with transaction.atomic():
                response = handler(view, request, *args, **kwargs)
                if status.is_success(response.status_code):
                    IdempotencyKey.objects.create(
                        tenant_id=tenant_id,
                        key=key,
                        request_path=request.path,
                        response_status=response.status_code,
                        response_body=response.data,
                    )
        except IntegrityError:
            stored = _stored_response(tenant_id=tenant_id, key=key)
            if stored is None:
                raise
            return _replay(stored, request.path)
        return response

    return wrapper


def _stored_response(*, tenant_id: int, key: str) -> IdempotencyKey | None:
    stored = IdempotencyKey.objects.filter(tenant_id=tenant_id, key=key).first()
    if stored is not None and stored.created_at < timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS):
        stored.delete()  # expired: the key is free again
        return None
    return stored


def _replay(stored: IdempotencyKey, path: str) -> Response:
    if stored.request_path != path:
        return Response(
            {HEADER: [f"This key was already used for {stored.request_path}; use a new key for another request."]},
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )
    response = Response(stored.response_body, status=stored.response_status)
    response["Idempotent-Replayed"] = "true"
    return response
