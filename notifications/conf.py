"""Settings of the notifications app's scheduled emails and their defaults (set them in settings or the env)."""

import os

from django.conf import settings


def digest_display_timezone() -> str:
    """The zone in which digests show times to people (schedules themselves are UTC), e.g. "Europe/Berlin"."""
    return getattr(settings, "DIGEST_DISPLAY_TIMEZONE", None) or os.environ.get("DIGEST_DISPLAY_TIMEZONE", "UTC")


def digest_batch_size() -> int:
    """Users read per database round trip while fanning out the weekly digest."""
    return int(getattr(settings, "DIGEST_BATCH_SIZE", None) or os.environ.get("DIGEST_BATCH_SIZE", 500))
