from django.contrib import admin

from tenants_app.models import ApiKey, Tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin[Tenant]):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = ("prefix", "name", "tenant", "created_at", "last_used_at", "revoked_at")
    list_filter = ("tenant",)
    search_fields = ("prefix", "name")
    # Keys are issued through `manage.py create_api_key` or the dashboard, which show the secret once.
    readonly_fields = ("prefix", "key_hash", "created_at", "created_by", "last_used_at")

    def has_add_permission(self, request: object) -> bool:
        return False
