"""LangGraph's long-term store (BaseStore) on the service: one batch of operations per request, run in order
in one transaction, each answered in place — get, search (namespace prefix, JSON filter, semantic query),
put (with index control and TTL, a null value deletes) and list_namespaces.

Semantic search uses the memories layer's embedder: an item put with `index` (a list of JSON paths, "$"
for the whole value) gets one vector of those fields' text; a query ranks such items by cosine similarity.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from pgvector.django import CosineDistance

from langgraph_app.models import StoreItem
from memories_app.embeddings import get_embedder
from memories_app.services import embed_texts
from memory_admin.errors import ValidationFailed
from tenants_app.models import Tenant

MAX_SEARCH_LIMIT = 1000
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": operator.eq,
    "$ne": operator.ne,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


@dataclass(frozen=True)
class Op:
    kind: str
    args: dict[str, Any]


def join(namespace: list[str]) -> str:
    return ".".join(namespace)


def _alive(tenant: Tenant, now: datetime) -> QuerySet[StoreItem]:
    return StoreItem.objects.filter(tenant=tenant).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


def _item(row: StoreItem, score: float | None = None, *, with_score: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "namespace": row.prefix.split(".") if row.prefix else [],
        "key": row.key,
        "value": row.value,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
    if with_score:
        out["score"] = score
    return out


def _refresh(rows: list[StoreItem], now: datetime) -> None:
    for row in rows:
        if row.ttl_minutes is not None:
            row.expires_at = now + timedelta(minutes=row.ttl_minutes)
            StoreItem.objects.filter(pk=row.pk).update(expires_at=row.expires_at)


def _path_values(value: Any, path: str) -> list[Any]:
    if path in ("$", ""):
        return [value]
    current: list[Any] = [value]
    for part in path.split("."):
        following: list[Any] = []
        for item in current:
            if part == "*" and isinstance(item, dict):
                following.extend(item.values())
            elif part == "*" and isinstance(item, list):
                following.extend(item)
            elif isinstance(item, dict) and part in item:
                following.append(item[part])
        current = following
    return current


def index_text(value: dict[str, Any], paths: list[str]) -> str:
    """The text embedded for `value`: the indexed fields' values (strings as they are, the rest as JSON)."""
    parts = []
    for path in paths:
        for found in _path_values(value, path):
            parts.append(found if isinstance(found, str) else json.dumps(found, sort_keys=True, ensure_ascii=False))
    return "\n".join(part for part in parts if part)


def _matches(value: Any, conditions: dict[str, Any]) -> bool:
    for field, expected in conditions.items():
        actual = value.get(field) if isinstance(value, dict) else None
        if isinstance(expected, dict) and expected and all(name in _OPERATORS for name in expected):
            for name, operand in expected.items():
                try:
                    if actual is None or not _OPERATORS[name](actual, operand):
                        return False
                except TypeError:
                    return False
        elif actual != expected:
            return False
    return True


def _get(tenant: Tenant, args: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    row = _alive(tenant, now).filter(prefix=join(args["namespace"]), key=args["key"]).first()
    if row is None:
        return None
    if args.get("refresh_ttl", True):
        _refresh([row], now)
    return _item(row)


def _put(tenant: Tenant, args: dict[str, Any], now: datetime) -> None:
    prefix, key, value = join(args["namespace"]), args["key"], args.get("value")
    if value is None:
        StoreItem.objects.filter(tenant=tenant, prefix=prefix, key=key).delete()
        return
    index = args.get("index")
    embedding, model = None, ""
    if index:
        text = index_text(value, list(index))
        if text:
            embedding, model = embed_texts([text])[0], get_embedder().model_id
    ttl = args.get("ttl")
    StoreItem.objects.update_or_create(
        tenant=tenant,
        prefix=prefix,
        key=key,
        defaults={
            "value": value,
            "embedding": embedding,
            "embedding_model": model,
            "updated_at": now,
            "ttl_minutes": ttl,
            "expires_at": now + timedelta(minutes=ttl) if ttl is not None else None,
        },
        create_defaults={
            "value": value,
            "embedding": embedding,
            "embedding_model": model,
            "created_at": now,
            "updated_at": now,
            "ttl_minutes": ttl,
            "expires_at": now + timedelta(minutes=ttl) if ttl is not None else None,
        },
    )


def _search(tenant: Tenant, args: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    prefix = join(args.get("namespace_prefix") or [])
    rows = _alive(tenant, now)
    if prefix:
        rows = rows.filter(Q(prefix=prefix) | Q(prefix__startswith=prefix + "."))
    conditions: dict[str, Any] = args.get("filter") or {}
    plain = {
        field: expected
        for field, expected in conditions.items()
        if not (isinstance(expected, dict) and expected and all(name in _OPERATORS for name in expected))
    }
    if plain:
        rows = rows.filter(value__contains=plain)
    limit, offset = args.get("limit", 10), args.get("offset", 0)
    query = args.get("query")
    scored: list[tuple[StoreItem, float | None]]
    if query:
        embedder = get_embedder()
        vector = embed_texts([query])[0]
        ranked = (
            rows.filter(embedding_model=embedder.model_id)
            .annotate(distance=CosineDistance("embedding", vector))
            .order_by("distance", "prefix", "key")
        )
        unranked = rows.exclude(embedding_model=embedder.model_id).order_by("-updated_at", "prefix", "key")
        scored = [(row, 1.0 - float(row.distance)) for row in ranked] + [(row, None) for row in unranked]
    else:
        scored = [(row, None) for row in rows.order_by("-updated_at", "prefix", "key")]
    kept = [(row, score) for row, score in scored if _matches(row.value, conditions)][offset : offset + limit]
    if args.get("refresh_ttl", True):
        _refresh([row for row, _ in kept], now)
    return [_item(row, score, with_score=True) for row, score in kept]


def _label_matches(labels: list[str], pattern: list[str], *, at_end: bool) -> bool:
    if len(pattern) > len(labels):
        return False
    window = labels[-len(pattern) :] if at_end else labels[: len(pattern)]
    return all(want in ("*", have) for want, have in zip(pattern, window, strict=True))


def _list_namespaces(tenant: Tenant, args: dict[str, Any], now: datetime) -> list[list[str]]:
    found: set[tuple[str, ...]] = set()
    max_depth = args.get("max_depth")
    for prefix in _alive(tenant, now).values_list("prefix", flat=True).distinct():
        labels = prefix.split(".") if prefix else []
        if args.get("prefix") and not _label_matches(labels, args["prefix"], at_end=False):
            continue
        if args.get("suffix") and not _label_matches(labels, args["suffix"], at_end=True):
            continue
        found.add(tuple(labels[:max_depth] if max_depth is not None else labels))
    offset, limit = args.get("offset", 0), args.get("limit", 100)
    return [list(namespace) for namespace in sorted(found)[offset : offset + limit]]


_HANDLERS: dict[str, Callable[[Tenant, dict[str, Any], datetime], Any]] = {
    "get": _get,
    "put": _put,
    "search": _search,
    "list_namespaces": _list_namespaces,
}


@transaction.atomic
def run_batch(*, tenant: Tenant, ops: list[Op]) -> list[Any]:
    """Run the operations in order and answer each in place: an item or null (get), nothing (put), items
    with scores (search), namespaces (list_namespaces). Expired items of the tenant are removed first, so no
    operation sees them. ValidationFailed for an unknown operation; Unavailable (503) when a put or query
    needs the embedder and it cannot answer (nothing is stored then)."""
    now = timezone.now()
    StoreItem.objects.filter(tenant=tenant, expires_at__lte=now).delete()
    results = []
    for op in ops:
        handler = _HANDLERS.get(op.kind)
        if handler is None:
            raise ValidationFailed(f"Unknown store operation {op.kind!r}.", details={"op": op.kind})
        results.append(handler(tenant, op.args, now))
    return results
