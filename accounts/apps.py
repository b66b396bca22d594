from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from rest_framework.authtoken.models import Token

        from accounts.models import User

        # Token authentication answers from a per-process cache (jobs.localcache): any change to a user (deactivated,
        # moved, deleted with its tenant) or a token (deleted, replaced) empties it in every process.
        for model in (User, Token):
            post_save.connect(_auth_changed, sender=model, dispatch_uid=f"auth-cache-{model.__name__}-save")
            post_delete.connect(_auth_changed, sender=model, dispatch_uid=f"auth-cache-{model.__name__}-delete")


def _auth_changed(*, created: bool = False, **kwargs) -> None:
    from jobs.localcache import invalidate

    if not created:  # nothing is cached about a row that did not exist
        invalidate("auth")
