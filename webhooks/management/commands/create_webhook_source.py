from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from accounts.models import Tenant
from webhooks.models import WebhookSource
from webhooks.services import webhook_source_get_or_create, webhook_source_rotate_secret


class Command(BaseCommand):
    help = "Create (or show) an incoming-webhook source; print its signing secret (whsec_…) as the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug", help="the source's name in the URL: /api/webhooks/<slug>/")
        parser.add_argument("--tenant", help="slug of the tenant this integration belongs to (new sources only)")
        parser.add_argument(
            "--rotate", action="store_true", help="replace the secret; the old one verifies for the grace period"
        )

    def handle(self, *args, slug: str, tenant: str | None, rotate: bool, **options) -> None:
        if not slug or slugify(slug) != slug:
            raise CommandError(f"SLUG: {slug!r} is not a slug (lowercase letters, digits, hyphens, underscores)")
        longest = WebhookSource._meta.get_field("slug").max_length
        if len(slug) > longest:
            raise CommandError(f"SLUG: {len(slug)} characters long; at most {longest} are allowed")
        tenant_id = None
        if tenant is not None:
            tenant_id = Tenant.objects.filter(slug=tenant).values_list("pk", flat=True).first()
            if tenant_id is None:
                raise CommandError(f"--tenant: no tenant with slug {tenant!r}")
        source, created = webhook_source_get_or_create(slug=slug, tenant_id=tenant_id)
        if tenant_id is not None and not created and source.tenant_id != tenant_id:
            raise CommandError(f"Source {slug!r} exists and belongs to another tenant; --tenant applies to new ones")
        if rotate and not created:
            source = webhook_source_rotate_secret(source_id=source.pk)
            self.stdout.write(f"Rotated; the previous secret verifies until {source.previous_secret_expires_at}.")
        state = "created" if created else "exists"
        self.stdout.write(f"Webhook source {source.slug!r} {state}; deliveries go to POST /api/webhooks/{source.slug}/")
        if not source.is_active:
            self.stdout.write("Note: this source is inactive (deliveries answer 404); activate it in the admin.")
        self.stdout.write(source.signing_secret)
