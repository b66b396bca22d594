from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from accounts.services import AccountError, tenant_user_create


class Command(BaseCommand):
    help = "Create a tenant (if new) and its user; print the user's API token as the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="the tenant's name; its slug is derived from it")
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--staff", action="store_true", help="may log in to /admin/")
        parser.add_argument("--superuser", action="store_true", help="may do everything in /admin/")

    def handle(self, *args, name: str, email: str, password: str, staff: bool, superuser: bool, **options) -> None:
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"--email: {email!r} is not a valid email address") from exc
        try:
            user, token = tenant_user_create(
                tenant_name=name, email=email, password=password, is_staff=staff, is_superuser=superuser
            )
        except AccountError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Tenant {user.tenant.name!r} (slug {user.tenant.slug}); user {user.email}")
        self.stdout.write(token)
