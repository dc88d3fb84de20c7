"""API-key authentication for agents: `Authorization: Bearer mk_…` (or `X-API-Key: mk_…`).

A request authenticated this way carries an `AgentPrincipal` as `request.user`; every selector and service
takes its tenant, so no view can reach another tenant's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from tenants_app import keycache
from tenants_app.models import ApiKey, Tenant
from tenants_app.selectors import active_key_for
from tenants_app.services import hash_key

# last_used_at is advisory; writing it on every request would put a row update on the hot path.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class AgentPrincipal:
    tenant: Tenant
    api_key: ApiKey = field(repr=False)
    is_authenticated: bool = True
    is_active: bool = True
    is_superuser: bool = False

    @property
    def tenant_id(self) -> Any:
        return self.tenant.pk


# Where the hot lane (memory_admin.api.hot) leaves the key check it already made, when it hands a request to
# Django: the rate window must not count the request twice.
KEY_CHECK_ENVIRON = "memory.key_check"


def resolve_key(raw: str, check: tuple[bytes | None, int | None] | None = None) -> tuple[ApiKey | None, int | None]:
    """The active key `raw` names (None: unknown or revoked) and the request count of its rate window.

    Keys are remembered per process behind the Redis epoch (tenants_app.keycache); `check` is that round trip's
    answer when the caller already has it.
    """
    digest = hash_key(raw)
    epoch, count = check if check is not None else keycache.check(digest)
    api_key = keycache.cached(digest, epoch)
    if api_key is None:
        api_key = active_key_for(raw)
        if api_key is None:
            return None, count
        keycache.remember(digest, api_key, epoch)
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key, count


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AgentPrincipal, ApiKey] | None:
        raw = self._raw_key(request)
        if raw is None:
            return None
        api_key, count = resolve_key(raw, request.META.get(KEY_CHECK_ENVIRON))
        request._request.rate_count = count  # type: ignore[attr-defined]  # judged by ApiKeyRateThrottle
        if api_key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        return AgentPrincipal(tenant=api_key.tenant, api_key=api_key), api_key

    def _raw_key(self, request: Request) -> str | None:
        header = str(request.META.get("HTTP_AUTHORIZATION", ""))
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != self.keyword.lower() or not value.strip():
                raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <API key>'.")
            return value.strip()
        key = str(request.META.get("HTTP_X_API_KEY", "")).strip()
        return key or None

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class IsTenantAgent(permissions.BasePermission):
    """The caller presented a valid API key."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, AgentPrincipal)


def tenant_of(request: Request) -> Tenant:
    principal = request.user
    if not isinstance(principal, AgentPrincipal):
        raise exceptions.NotAuthenticated()
    return principal.tenant
