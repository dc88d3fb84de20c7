"""Dashboard pages for the people agents work for: finding one, and one person's profile, memories by scope
(with decay and access statistics), sessions and a semantic search over what the service remembers of them;
and one memory with its history of versions and merges.

Looking is not using: nothing here counts as an access to a memory (no decay refresh, no access statistics).
"""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Q, QuerySet, TextField, Window
from django.db.models.functions import Cast, Left
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from langgraph_app.models import StoreItem
from langgraph_app.selectors import store_items_of
from lifecycle_app.lifetimes import eviction_for
from memories_app import selectors as memory_selectors
from memories_app.models import Memory, MemoryRevision, RevisionKind, Scope, UserProfile
from memories_app.services import MAX_USER_ID_CHARS, embed_texts
from memory_admin.dashboard.access import staff_page
from memory_admin.dashboard.selectors import EmbedderInfo, active_embedder
from memory_admin.errors import Unavailable, Unprocessable
from sessions_app.models import AgentSession
from tenants_app.models import Tenant

MEMORIES_PER_SCOPE = 100
SESSIONS_SHOWN = 50
STORE_ITEMS_SHOWN = 50
STORE_VALUE_CHARS = 300
SEARCH_RESULTS = 20


class UserIdConverter:
    """A tenant's user id in a URL: any characters (slashes and newlines too), as the API accepts them, in one
    path segment that no client rewrites. Browsers and HTTP clients drop `.` and `..` segments before asking
    (`%2E` counts as a dot), so `team/../carol` written as it is would open carol's page. `~XX` stands for the
    character of hex code XX: `~` and `/` are always written so, and a leading `.`, so the segment is never a
    dot segment. Ids read as they are (`alice`, `alice@example.com`; `team/alice` is `team~2Falice`), and an
    address from before, with raw slashes, still opens its page."""

    regex = r"(?s:.+)"

    def to_python(self, value: str) -> str:
        if "~" in value and not re.fullmatch(r"(?s:[^~]|~[0-9A-F]{2})+", value):
            raise ValueError("A `~` in a user id's address starts a hex code.")
        return re.sub(r"~([0-9A-F]{2})", lambda code: chr(int(code.group(1), 16)), value)

    def to_url(self, value: str) -> str:
        escaped = value.replace("~", "~7E").replace("/", "~2F")
        return "~2E" + escaped[1:] if escaped.startswith(".") else escaped


class FindUserForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all(), empty_label="Choose a tenant")
    # CharField refuses NUL characters by itself; the length is the API's limit on user ids. Exactly as the
    # tenant stores it, spaces included: " alice " and "alice" are two people to the API.
    user_id = forms.CharField(max_length=MAX_USER_ID_CHARS, strip=False, label="User id")

    def clean_user_id(self) -> str:
        user_id: str = self.cleaned_data["user_id"]
        if not user_id.strip():
            raise forms.ValidationError("A user id needs more than spaces.", code="blank")
        return user_id


class MemorySearchForm(forms.Form):
    q = forms.CharField(label="Search this user's memories", max_length=settings.MEMORY_MAX_CONTENT_CHARS)
    include_global = forms.BooleanField(required=False, label="also the tenant's global memories")


def _plausible_user_id(user_id: str) -> bool:
    # PostgreSQL text cannot hold NUL, so such an id can name no one (and would fail the query).
    return bool(user_id.strip()) and len(user_id) <= MAX_USER_ID_CHARS and "\x00" not in user_id


def user_exists(tenant: Tenant, user_id: str) -> bool:
    """The service knows this person: a profile, a session or a live memory names them."""
    return (
        UserProfile.objects.filter(tenant=tenant, user_id=user_id).exists()
        or AgentSession.objects.filter(tenant=tenant, user_id=user_id).exists()
        or Memory.objects.alive().filter(tenant=tenant, user_id=user_id).exists()
        or _store_items(tenant, user_id).exists()
    )


@dataclass(frozen=True)
class StoreRow:
    item: StoreItem
    namespace: str
    value: str  # the JSON value, cut to STORE_VALUE_CHARS
    expired: bool


def _store_items(tenant: Tenant, user_id: str) -> QuerySet[StoreItem]:
    return store_items_of(tenant=tenant, user_id=user_id, namespaces=settings.ERASURE_STORE_NAMESPACES)


def store_rows(tenant: Tenant, user_id: str, *, now: datetime) -> tuple[int, list[StoreRow]]:
    """The LangGraph store items in the user's namespaces (what erasing them removes): how many, and the
    most recently updated STORE_ITEMS_SHOWN."""
    items = _store_items(tenant, user_id).defer("embedding", "value")
    # One query: the window counts every match before the limit applies; values are cut in Postgres.
    counted = items.annotate(
        total=Window(Count("id")), value_text=Left(Cast("value", TextField()), STORE_VALUE_CHARS + 1)
    ).order_by("-updated_at", "prefix", "key")
    newest = list(counted[:STORE_ITEMS_SHOWN])
    rows = []
    for item in newest:
        text = item.value_text
        if len(text) > STORE_VALUE_CHARS:
            text = text[: STORE_VALUE_CHARS - 1] + "…"
        expired = item.expires_at is not None and item.expires_at <= now
        rows.append(StoreRow(item, " / ".join(item.prefix.split(".")), text, expired))
    return (newest[0].total if newest else 0), rows


# --- reads behind the user page -------------------------------------------------------------------------


def profile_card(profile: UserProfile | None) -> dict[str, Any]:
    """What the profile card (dashboard/users/profile.html) shows, for the page and the live socket alike:
    facts and preferences as lists sorted by key (a key named `items` is no dict method to a template), and
    each preference's value as JSON."""
    if profile is None:
        return {"profile": None, "facts": [], "preferences": []}
    return {
        "profile": profile,
        "facts": sorted(profile.facts.items()),
        "preferences": [
            (key, json.dumps(value, ensure_ascii=False)) for key, value in sorted(profile.preferences.items())
        ],
    }


def memory_totals(tenant_id: uuid.UUID, user_id: str, scopes: Iterable[str] | None = None) -> dict[str, int]:
    """How many live memories each section of the user page counts: the user's session and user memories and
    the tenant's global ones (every section, or those of `scopes`)."""
    wanted = list(scopes) if scopes is not None else [Scope.SESSION, Scope.USER, Scope.GLOBAL]
    counted = dict(
        Memory.objects.alive()
        .filter(tenant_id=tenant_id, scope__in=wanted)
        .filter(Q(user_id=user_id) | Q(scope=Scope.GLOBAL))
        .values_list("scope")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("scope", "n")
    )
    return {scope: counted.get(scope, 0) for scope in wanted}


@dataclass(frozen=True)
class MemoryRow:
    memory: Memory
    decay: float
    evictable: bool
    # Searches compare vectors of the active embedder only; others wait for `manage.py reembed`.
    searchable: bool
    revisions: int = 0
    merges: int = 0
    score: float | None = None


@dataclass
class ScopeSection:
    scope: str
    total: int
    rows: list[MemoryRow] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.total > len(self.rows)


def _revision_counts(memory_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    counts: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    if memory_ids:
        grouped = (
            MemoryRevision.objects.filter(memory_id__in=memory_ids)
            .values_list("memory_id", "kind")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for memory_id, kind, n in grouped:
            counts[memory_id][kind] = n
    return counts


def memory_rows(
    memories: list[Memory], *, model_id: str, now: datetime, scores: dict[uuid.UUID, float] | None = None
) -> list[MemoryRow]:
    """Memories with their decay weight (the model's formula), searchability and history counts (one query)."""
    counts = _revision_counts([memory.pk for memory in memories])
    return [
        MemoryRow(
            memory=memory,
            decay=memory.decay_score(now=now),
            evictable=memory.is_eviction_candidate(threshold=eviction_for(memory.tenant_id).threshold, now=now),
            searchable=memory.embedding_model == model_id,
            revisions=sum(counts[memory.pk].values()),
            merges=counts[memory.pk].get(RevisionKind.MERGE, 0),
            score=(scores or {}).get(memory.pk),
        )
        for memory in memories
    ]


def _newest(queryset: QuerySet[Memory]) -> list[Memory]:
    # The vector is the bulk of a row and the page does not show it.
    return list(queryset.defer("embedding").order_by("-created_at", "-id")[:MEMORIES_PER_SCOPE])


def memory_sections(tenant: Tenant, user_id: str, *, model_id: str, now: datetime) -> list[ScopeSection]:
    """The user's session and user memories and the tenant's global ones, newest first, with totals."""
    alive = memory_selectors.memories_for(tenant)
    totals = memory_totals(tenant.pk, user_id)
    sections = []
    for scope in (Scope.SESSION, Scope.USER, Scope.GLOBAL):
        owned = alive.filter(scope=scope) if scope == Scope.GLOBAL else alive.filter(scope=scope, user_id=user_id)
        sections.append(ScopeSection(scope=scope, total=totals.get(scope, 0), rows=[]))
        if totals.get(scope):
            sections[-1].rows = memory_rows(_newest(owned), model_id=model_id, now=now)
    return sections


@dataclass(frozen=True)
class SearchOutcome:
    rows: list[MemoryRow] = field(default_factory=list)
    problem: str = ""


def search_user_memories(
    tenant: Tenant, user_id: str, text: str, *, include_global: bool, embedder: EmbedderInfo
) -> SearchOutcome:
    """memories_app's own search over the user's scopes, as an agent would run it (without counting access)."""
    if embedder.problem:
        return SearchOutcome(problem=f"Search is unavailable: {embedder.problem}")
    try:
        vector = embed_texts([text])[0]
    except (Unavailable, Unprocessable, ImproperlyConfigured) as exc:
        return SearchOutcome(
            problem=f"The embedder did not answer or refused the query, so nothing was searched: {exc}"
        )
    scopes = {Scope.SESSION, Scope.USER} | ({Scope.GLOBAL} if include_global else set())
    found = memory_selectors.search_memories(
        tenant=tenant,
        vector=vector,
        model_id=embedder.model_id,
        where=memory_selectors.SearchScope(scopes=frozenset(scopes), user_id=user_id),
        k=SEARCH_RESULTS,
    )
    rows = memory_rows(
        [item.memory for item in found],
        model_id=embedder.model_id,
        now=timezone.now(),
        scores={item.memory.pk: item.score for item in found},
    )
    return SearchOutcome(rows=rows)


# --- views ----------------------------------------------------------------------------------------------


def _missing(request: HttpRequest, message: str, tenant: Tenant | None = None) -> HttpResponse:
    form = FindUserForm(initial={"tenant": tenant.pk if tenant else None})
    return render(request, "dashboard/users/missing.html", {"message": message, "form": form}, status=404)


@staff_page()
def find_user(request: HttpRequest) -> HttpResponse:
    form = FindUserForm(request.GET or None)
    message = ""
    if form.is_valid():
        tenant, user_id = form.cleaned_data["tenant"], form.cleaned_data["user_id"]
        if user_exists(tenant, user_id):
            return redirect("dashboard:user", tenant=tenant.pk, user_id=user_id)
        message = f"{tenant.name} has no user “{user_id}”: no profile, session or memory names them."
    return render(request, "dashboard/users/find.html", {"form": form, "message": message})


@staff_page()
def user_detail(request: HttpRequest, tenant: uuid.UUID, user_id: str) -> HttpResponse:
    owner = Tenant.objects.filter(pk=tenant).first()
    if owner is None:
        return _missing(request, "There is no tenant with that id.")
    if not _plausible_user_id(user_id):
        return _missing(request, f"That is not a user id: ids are 1-{MAX_USER_ID_CHARS} characters, no NUL.", owner)
    embedder = active_embedder()
    now = timezone.now()
    profile = UserProfile.objects.filter(tenant=owner, user_id=user_id).first()
    sessions = list(
        AgentSession.objects.filter(tenant=owner, user_id=user_id).order_by("-created_at", "-id")[: SESSIONS_SHOWN + 1]
    )
    sections = memory_sections(owner, user_id, model_id=embedder.model_id, now=now)
    store_total, store_items = store_rows(owner, user_id, now=now)
    if (
        profile is None
        and not sessions
        and not store_total
        and not any(s.total for s in sections if s.scope != Scope.GLOBAL)
    ):
        return _missing(request, f"{owner.name} has no user “{user_id}”: no profile, session or memory.", owner)
    search_form = MemorySearchForm(request.GET if "q" in request.GET else None)
    search = None
    if search_form.is_valid():
        search = search_user_memories(
            owner,
            user_id,
            search_form.cleaned_data["q"],
            include_global=search_form.cleaned_data["include_global"],
            embedder=embedder,
        )
    context: dict[str, Any] = {
        "tenant": owner,
        "user_id": user_id,
        **profile_card(profile),
        "sessions": sessions[:SESSIONS_SHOWN],
        "more_sessions": len(sessions) > SESSIONS_SHOWN,
        "sections": sections,
        "store_total": store_total,
        "store_items": store_items,
        "store_templates": settings.ERASURE_STORE_NAMESPACES,
        "embedder": embedder,
        "search_form": search_form,
        "search": search,
        "half_life_days": settings.MEMORY_DECAY_HALF_LIFE_DAYS,
        "eviction": eviction_for(owner.pk),
        # The live socket catches up from here: whatever changed while the page was being built.
        "rendered_at": now,
    }
    return render(request, "dashboard/users/detail.html", context)


@staff_page()
def memory_detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """One memory: content, metadata, decay and access statistics, and every revision (merges with inputs)."""
    memory = Memory.objects.alive().select_related("tenant", "session").defer("embedding").filter(pk=pk).first()
    if memory is None:
        raise Http404("No such memory.")
    embedder = active_embedder()
    (row,) = memory_rows([memory], model_id=embedder.model_id, now=timezone.now())
    return render(
        request,
        "dashboard/users/memory.html",
        {
            "tenant": memory.tenant,
            "row": row,
            "memory": memory,
            "metadata": json.dumps(memory.metadata, indent=2, ensure_ascii=False),
            "revisions": list(memory_selectors.revisions_of(memory)),
            "embedder": embedder,
        },
    )
