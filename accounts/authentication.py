from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from accounts.models import User
from jobs.localcache import local_cache

# Every API call starts here, so the token's user is read in one plain query with what a request needs (the other
# fields load if something asks for them): select_related and its model building cost ~0.5 ms of Python a request.
# The row is then kept in this process's cache (jobs.localcache) until a user or token is saved or deleted anywhere.
_NEEDED = {"id", "is_superuser", "email", "tenant_id", "is_active", "is_staff"}
_USER_FIELDS = tuple(f.attname for f in User._meta.concrete_fields if f.attname in _NEEDED)  # from_db wants this order
_USER_BY_TOKEN = (
    f"SELECT {', '.join(f'u.{name}' for name in _USER_FIELDS)} FROM {User._meta.db_table} u "
    f"JOIN {Token._meta.db_table} t ON t.user_id = u.id WHERE t.key = %s"
)


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's ``Authorization: Token <key>`` scheme with its answers; a key with a NUL byte is invalid, not a 500."""

    def authenticate_credentials(self, key: str):
        if "\x00" in key:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        row = local_cache.get_or_load("auth", key, lambda: _user_row(key))
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        fields = dict(zip(_USER_FIELDS, row, strict=True))
        if not fields["is_active"]:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        for flag in ("is_active", "is_staff", "is_superuser"):
            fields[flag] = bool(fields[flag])  # SQLite answers 0/1
        user = User.from_db(connection.alias, _USER_FIELDS, tuple(fields.values()))
        # request.auth as DRF gives it, a Token whose .user is this user; built without Token(user=…), whose foreign
        # key descriptor costs more than the rest of a cached lookup.
        token = Token.from_db(connection.alias, ["key", "user_id"], [key, user.pk])
        token._state.fields_cache["user"] = user
        return user, token


def _user_row(key: str) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(_USER_BY_TOKEN, [key])
        return cursor.fetchone()
