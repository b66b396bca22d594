from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import Count, Q

from accounts.models import Tenant, User


class TenantUserInline(admin.TabularInline):
    model = User
    fields = ["email", "first_name", "last_name", "is_active", "is_staff"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # users are added on the user page, with a password


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "subscription_current_period_end", "active_users", "created_at"]
    list_filter = ["subscription_current_period_end"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [TenantUserInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(active_user_count=Count("users", filter=Q(users__is_active=True)))

    @admin.display(description="active users", ordering="active_user_count")
    def active_users(self, tenant: Tenant) -> int:
        return tenant.active_user_count


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "tenant", "first_name", "last_name", "is_active", "is_staff"]
    list_filter = ["is_active", "is_staff", "is_superuser", "tenant"]
    search_fields = ["email", "first_name", "last_name"]
    list_select_related = ["tenant"]
    fieldsets = [
        (None, {"fields": ["email", "password", "tenant"]}),
        ("Name", {"fields": ["first_name", "last_name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "tenant", "password1", "password2"]})]
