from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.services import tenant_user_create

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"


class Command(BaseCommand):
    help = "Create the demo tenant and its user (a superuser, for the admin); print how to log in and the API token."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, base_url: str, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("seed_demo makes a superuser with a published password: development only (DEBUG=1)")
        user, token = tenant_user_create(
            tenant_name="Demo", email=DEMO_EMAIL, password=DEMO_PASSWORD, is_staff=True, is_superuser=True, by_slug=True
        )
        self.stdout.write(
            f"\nDemo tenant ready.\n"
            f"  Pages:  {base_url}/reports/   log in as {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
            f"  Admin:  {base_url}/admin/     (same login)\n"
            f"  API:    curl -H 'Authorization: Token {token}' {base_url}/api/reports/\n"
            f"  API token: {token}\n"
        )
