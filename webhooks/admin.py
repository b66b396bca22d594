import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from webhooks.models import WebhookEvent, WebhookSource
from webhooks.services import webhook_event_reprocess, webhook_source_rotate_secret


@admin.register(WebhookSource)
class WebhookSourceAdmin(admin.ModelAdmin):
    list_display = ["slug", "tenant", "is_active", "created_at", "rotated_at", "previous_secret_expires_at"]
    list_filter = ["is_active"]
    search_fields = ["slug"]
    raw_id_fields = ["tenant"]
    fields = ["slug", "tenant", "is_active", "signing_secret", "previous_secret_expires_at", "created_at", "rotated_at"]
    readonly_fields = ["signing_secret", "previous_secret_expires_at", "created_at", "rotated_at"]
    actions = ["rotate_secret"]

    @admin.action(description="Rotate the signing secret (the old one keeps verifying for the grace period)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookSource]) -> None:
        for source in queryset:
            source = webhook_source_rotate_secret(source_id=source.pk)
            self.message_user(
                request,
                f"{source.slug}: new secret {source.signing_secret} — give it to the provider; the previous one "
                f"verifies until {source.previous_secret_expires_at:%Y-%m-%d %H:%M} UTC.",
                messages.SUCCESS,
            )


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ["webhook_id", "source", "type", "status", "attempts", "tenant", "received_at", "processed_at"]
    list_filter = ["source", "status", "type", ("received_at", admin.DateFieldListFilter)]
    search_fields = ["webhook_id", "type", "job__task_id"]
    list_select_related = ["source", "tenant"]
    date_hierarchy = "received_at"
    fields = [
        "source", "webhook_id", "type", "status", "attempts", "error", "tenant", "job", "received_at",
        "processed_at", "pretty_payload", "pretty_headers",
    ]  # fmt: skip
    readonly_fields = fields
    actions = ["reprocess"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # events are what the provider sent; only the reprocess action acts on them

    @admin.display(description="payload")
    def pretty_payload(self, event: WebhookEvent) -> str:
        return _pretty(event.payload)

    @admin.display(description="headers")
    def pretty_headers(self, event: WebhookEvent) -> str:
        return _pretty(event.headers)

    @admin.action(description="Reprocess the selected events (through the processing task)")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        task_ids = [webhook_event_reprocess(event_id=event.pk, user_id=request.user.pk).task_id for event in queryset]
        self.message_user(request, f"{len(task_ids)} event(s) queued for processing: {', '.join(task_ids)}")


def _pretty(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))
