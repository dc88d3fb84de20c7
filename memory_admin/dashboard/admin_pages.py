"""Admin-only dashboard pages: agents' API keys (list, create — the key shown once — and revoke) and tenants.

A new key travels from the POST that creates it to the page that shows it through Redis, under a name only
this browser session can make (an HMAC of its session key and the new key's id), and is deleted by the read
that shows it (GETDEL): a reload, the back button or a second tab finds nothing. One name per key and nothing
in the session store, whose last save wins: keys created at once in one browser session are each shown once.
The key is never written to the session store or any log.
"""

from __future__ import annotations

from typing import Any

import redis
import structlog
from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from memories_app.models import Memory, UserProfile
from memory_admin.dashboard.access import staff_page
from memory_admin.errors import Conflict, ServiceError, ValidationFailed
from memory_admin.health import redis_client
from sessions_app.models import AgentSession
from tenants_app import selectors as tenant_selectors
from tenants_app.models import ApiKey, Tenant
from tenants_app.roles import Role
from tenants_app.services import create_tenant, issue_api_key, revoke_api_key

logger = structlog.get_logger("memory.dashboard")

KEYS_PER_PAGE = 50
NEW_KEY_TTL_SECONDS = 300
_NEW_KEY_PREFIX = "mem:dashboard:new-key:"
_HANDOVER_SALT = "memory_admin.dashboard.new-api-key"
_MAX_BIGINT = 2**63 - 1


# --- API keys -------------------------------------------------------------------------------------------


class KeyFilterForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all(), required=False, empty_label="All tenants")


class CreateKeyForm(forms.Form):
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.all(), required=False, empty_label="— a new tenant —", label="Tenant"
    )
    new_tenant = forms.CharField(
        required=False, max_length=100, label="New tenant name", help_text="letters, digits, '-' or '_'"
    )
    name = forms.CharField(max_length=100, label="Key name", help_text="what or who the key is for")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if cleaned.get("tenant") and cleaned.get("new_tenant"):
            raise forms.ValidationError("Choose a tenant or name a new one, not both.")
        if not cleaned.get("tenant") and not cleaned.get("new_tenant") and "new_tenant" not in self.errors:
            raise forms.ValidationError("Choose a tenant or name a new one.")
        return cleaned


def _key_or_404(pk: int) -> ApiKey:
    key = tenant_selectors.api_keys().filter(pk=pk).first() if pk <= _MAX_BIGINT else None
    if key is None:
        raise Http404("No such API key.")
    return key


def _handover_name(request: HttpRequest, api_key: ApiKey) -> str:
    """Where this browser session's new key waits in Redis: one name per key, so no handover replaces another."""
    if request.session.session_key is None:
        request.session.save()
    mac = salted_hmac(_HANDOVER_SALT, f"{request.session.session_key}:{api_key.pk}", algorithm="sha256")
    return f"{_NEW_KEY_PREFIX}{mac.hexdigest()}"


def _hand_over(request: HttpRequest, api_key: ApiKey, raw_key: str) -> None:
    """Keep the new key for the one page view that shows it (raises redis.RedisError when Redis is down)."""
    redis_client().set(_handover_name(request, api_key), raw_key, ex=NEW_KEY_TTL_SECONDS)


def _take_over(request: HttpRequest, api_key: ApiKey) -> str | None:
    """The new key, once: the first call gets it, every later one None."""
    try:
        raw = redis_client().getdel(_handover_name(request, api_key))
    except redis.RedisError as exc:
        logger.warning("new_api_key_unavailable", error=type(exc).__name__)
        return None
    return raw.decode() if isinstance(raw, bytes) else raw


@staff_page(Role.ADMIN)
def api_key_list(request: HttpRequest) -> HttpResponse:
    form = KeyFilterForm(request.GET or None)
    keys = tenant_selectors.api_keys().order_by("-created_at", "-id")
    if form.is_valid() and form.cleaned_data["tenant"]:
        keys = keys.filter(tenant=form.cleaned_data["tenant"])
    page = Paginator(keys, KEYS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    # The live socket watches the filtered tenant from this moment on; without a filter, every tenant through
    # one group, whatever their number.
    watched = [form.cleaned_data["tenant"].pk] if form.is_valid() and form.cleaned_data["tenant"] else []
    return render(
        request,
        "dashboard/admin/keys.html",
        {
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "watched_tenants": [str(pk) for pk in watched],
            "watch_all": not watched,
            "live": page.number == 1,
            "rendered_at": timezone.now(),
        },
    )


@staff_page(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def api_key_create(request: HttpRequest) -> HttpResponse:
    form = CreateKeyForm(request.POST or None, initial={"tenant": request.GET.get("tenant")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            # The key exists only if this browser can be shown it: no handover, no key.
            with transaction.atomic():
                tenant = data["tenant"] or create_tenant(name=data["new_tenant"])
                api_key, raw_key = issue_api_key(tenant=tenant, name=data["name"], created_by=request.user)
                _hand_over(request, api_key, raw_key)
        except ValidationFailed as exc:
            form.add_error("new_tenant", exc.message)
        except Conflict as exc:
            form.add_error("new_tenant", f"A tenant named {exc.details['name']} exists; choose it above.")
        except redis.RedisError:
            form.add_error(None, "Redis is unreachable, so the new key could not be shown; no key was created.")
        else:
            return redirect("dashboard:api-key-created", pk=api_key.pk)
    return render(request, "dashboard/admin/key_create.html", {"form": form})


@never_cache
@staff_page(Role.ADMIN)
def api_key_created(request: HttpRequest, pk: int) -> HttpResponse:
    api_key = _key_or_404(pk)
    raw_key = _take_over(request, api_key)
    return render(request, "dashboard/admin/key_created.html", {"key": api_key, "raw_key": raw_key})


@staff_page(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def api_key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST (with the CSRF token) revokes."""
    api_key = _key_or_404(pk)
    if request.method == "POST":
        if api_key.is_active:
            try:
                revoke_api_key(api_key_id=api_key.pk)
            except ServiceError as exc:
                messages.error(request, exc.message)
                return redirect("dashboard:api-key-revoke", pk=api_key.pk)
            messages.success(request, f"Revoked {api_key.tenant.name}/{api_key.name} ({api_key.prefix}…).")
        else:
            messages.info(request, f"{api_key.prefix}… was already revoked.")
        return redirect("dashboard:api-keys")
    return render(request, "dashboard/admin/key_revoke.html", {"key": api_key})


# --- tenants --------------------------------------------------------------------------------------------


def _count_per_tenant(queryset: QuerySet[Any]) -> Coalesce:
    per_tenant = queryset.filter(tenant=OuterRef("pk")).order_by().values("tenant").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(per_tenant, output_field=IntegerField()), 0)


def tenants_with_counts() -> QuerySet[Tenant]:
    """Every tenant with what it holds; one query (a subquery per count, so the counts do not multiply)."""
    counted: dict[str, QuerySet[Any]] = {
        "active_key_count": ApiKey.objects.active(),
        "revoked_key_count": ApiKey.objects.filter(revoked_at__isnull=False),
        "session_count": AgentSession.objects.all(),
        "profile_count": UserProfile.objects.all(),
        "memory_count": Memory.objects.alive(),
    }
    return tenant_selectors.tenants().annotate(**{name: _count_per_tenant(qs) for name, qs in counted.items()})


@staff_page(Role.ADMIN)
def tenant_list(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/admin/tenants.html", {"tenants": list(tenants_with_counts())})
