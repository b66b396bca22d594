from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self) -> None:
        from jobs.maintenance import register_pruner
        from webhooks.services import webhook_events_prune_expired

        register_pruner("webhook events", webhook_events_prune_expired)
