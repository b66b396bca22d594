from django.contrib import admin

from notifications.models import OutboundEmail


@admin.register(OutboundEmail)
class OutboundEmailAdmin(admin.ModelAdmin):
    list_display = ["subject", "to_email", "tenant", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["status", "tenant"]
    search_fields = ["to_email", "subject", "job__task_id"]
    list_select_related = ["tenant"]
    readonly_fields = ["job", "attempts", "message_id", "sent_at", "created_at", "error"]
    raw_id_fields = ["requested_by"]
