from django.contrib.auth import authenticate
from django.db import transaction
from django.utils.text import slugify
from rest_framework.authtoken.models import Token

from accounts.models import Tenant, User


class AccountError(Exception):
    """A request about accounts that cannot be carried out as asked."""


@transaction.atomic
def tenant_user_create(
    *,
    tenant_name: str,
    email: str,
    password: str,
    is_staff: bool = False,
    is_superuser: bool = False,
    by_slug: bool = False,
) -> tuple[User, str]:
    """Create the tenant (when new) and its user, or update the user's password; return the user and API token.

    An existing tenant is found by its name (letter case and spacing aside), whatever its slug (a tenant renamed in
    the admin keeps its first one), not by the slug the name makes: "ACME!" is refused while "Acme" has the slug
    "acme", rather than letting a user of another company into Acme. With ``by_slug`` the tenant with the name's slug
    is taken whatever its name now is (the demo tenant, renamed in the admin).
    """
    slug = slugify(tenant_name)
    if not slug:
        raise AccountError(f"Cannot make a slug from the tenant name {tenant_name!r}")
    for what, value, field in (
        ("tenant name", tenant_name, Tenant._meta.get_field("name")),
        ("tenant slug", slug, Tenant._meta.get_field("slug")),
        ("email", email, User._meta.get_field("email")),
    ):
        if len(value) > field.max_length:
            raise AccountError(f"The {what} is {len(value)} characters long; at most {field.max_length} are allowed")
    if not password:
        raise AccountError("The password must not be empty: that user could never log in")
    if slug in reserved_tenant_slugs():
        raise AccountError(f"The tenant slug {slug!r} is reserved; choose another name")
    tenant = None if by_slug else Tenant.objects.filter(name__iexact=" ".join(tenant_name.split())).first()
    if tenant is None:
        tenant, created = Tenant.objects.get_or_create(slug=slug, defaults={"name": tenant_name})
        if not created and not by_slug:  # the slug is another name's
            raise AccountError(
                f"The tenant {tenant.name!r} already has the slug {slug!r} that {tenant_name!r} makes: give its name "
                "exactly to add a user to it, or a name that makes another slug for a new tenant"
            )
    email = User.objects.normalize_email(email).lower()
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email, password, tenant=tenant)
    elif user.tenant_id != tenant.id:
        raise AccountError(f"{email} already belongs to another tenant")
    elif not user.check_password(password):  # the same again changes nothing (a new hash would end its sessions)
        user.set_password(password)
    user.is_staff = is_staff or is_superuser or user.is_staff
    user.is_superuser = is_superuser or user.is_superuser
    user.save()
    token, _ = Token.objects.get_or_create(user=user)
    return user, token.key


def reserved_tenant_slugs() -> set[str]:
    """Slugs no customer may take: the tenant that owns platform jobs (billing webhooks) is one."""
    from webhooks.conf import webhooks_system_tenant_slug

    return {webhooks_system_tenant_slug()}


def token_obtain(*, email: str, password: str) -> str | None:
    """The API token of the user with these credentials, or None when they do not match an active tenant user."""
    user = authenticate(username=email, password=password)  # case: User.objects.get_by_natural_key
    if user is None or user.tenant_id is None:
        return None
    token, _ = Token.objects.get_or_create(user=user)
    return token.key
