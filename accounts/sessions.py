"""The session engine (SESSION_ENGINE): Django's database sessions, with keys checked before any query.

Django makes keys of lowercase letters and digits; a cookie holding anything else (a NUL byte, sent as ``\\000``
in a quoted cookie, would reach PostgreSQL and fail the request with a 500) is treated as no session at all.
"""

from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore

_VALID_KEY_CHARS = frozenset(VALID_KEY_CHARS)


class SessionStore(DatabaseSessionStore):
    def _validate_session_key(self, key):
        return bool(super()._validate_session_key(key)) and _VALID_KEY_CHARS.issuperset(key)
