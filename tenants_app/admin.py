from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.text import capfirst

from memory_admin.errors import Unavailable
from tenants_app.models import ApiKey, Tenant
from tenants_app.selectors import tenant_deletion
from tenants_app.services import delete_api_keys, delete_tenants, revoke_api_key


class RefusedWithoutRedis(admin.ModelAdmin[Any]):
    """Deleting here deletes API keys, which every process must forget through Redis at once (see keycache):
    when it cannot be reached the deletion (or a revocation) is refused with nothing changed, and the page says
    so."""

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except Unavailable as refused:
            return self._refused(request, refused)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        try:
            # One transaction for an action: Django logs a bulk deletion before it deletes, and an action
            # refused halfway (the delete, a revocation of several keys) must leave no trace either.
            with transaction.atomic():
                return super().changelist_view(request, extra_context)
        except Unavailable as refused:
            return self._refused(request, refused)

    def _refused(self, request: HttpRequest, refused: Unavailable) -> HttpResponse:
        self.message_user(request, f"Nothing was changed: {refused.message}", messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())


@admin.register(Tenant)
class TenantAdmin(RefusedWithoutRedis):
    list_display = ("name", "created_at")
    search_fields = ("name",)

    # Deleting a tenant deletes its keys, which every process must forget (see keycache), and its data in
    # Redis and its archive in cold storage must go with its rows: delete_tenants does all three.
    def delete_model(self, request: HttpRequest, obj: Tenant) -> None:
        delete_tenants(tenants=Tenant.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        delete_tenants(tenants=queryset)

    # The confirmation page counts a tenant's rows by kind instead of listing each one (Django's default, which
    # loads them all), and asks for no delete permission on those kinds: several are read-only here (memories,
    # profiles) because only services may change them, and delete_tenants is one. Rows that protect the tenant
    # (erasure and export requests and their audit trail) still forbid the deletion.
    def get_deleted_objects(
        self, objs: Sequence[Tenant] | QuerySet[Tenant], request: HttpRequest
    ) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        chosen = list(objs)
        deletion = tenant_deletion(chosen)
        summary = [f"{capfirst(Tenant._meta.verbose_name)}: {tenant}" for tenant in chosen]
        return summary, deletion.counts, set(), deletion.blockers


@admin.action(description="Revoke the selected keys")
def revoke_keys(modeladmin: Any, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
    for api_key in queryset:
        revoke_api_key(api_key_id=api_key.pk)
    modeladmin.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(RefusedWithoutRedis):
    list_display = ("prefix", "name", "tenant", "created_at", "last_used_at", "revoked_at")
    list_filter = ("tenant",)
    search_fields = ("prefix", "name")
    # Keys are issued through `manage.py create_api_key` or the dashboard, which show the secret once, and
    # revoked through revoke_api_key (the action here), which makes every process forget them at once: an
    # edited `revoked_at` would go on working wherever the key was cached. Deleting does the same forgetting.
    readonly_fields = ("prefix", "key_hash", "tenant", "created_at", "created_by", "last_used_at", "revoked_at")
    actions = [revoke_keys]

    def has_add_permission(self, request: object) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        delete_api_keys(api_keys=ApiKey.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        delete_api_keys(api_keys=queryset)
