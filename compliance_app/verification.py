"""The verification scan: after the purge, look everywhere for anything left of the person.

Two kinds of checks, each a count that must be zero:

- structural: rows that still reference the erased sessions and memories (by id), rows that still carry the
  person's user id in a `user_id` column, live data keys, Redis keys of the erased sessions;
- textual: every table of the database and every Redis key (name and value) searched for the person's
  identifiers (the user id and any further identifiers on the request). Identifiers shorter than
  TEXT_SCAN_MIN_LENGTH are left to the structural checks: "42" would match half the database.

Every check looks at the request's tenant alone: a row belongs to a tenant through its `tenant` column or
through the row it hangs off (an event through its session, a revision through its memory), and a Redis key
through the tenant or the session it names. The same user id in another tenant is another person: their rows
are neither found nor counted. Tables and keys no tenant owns (staff accounts, the job log, queues) are
searched whole, as the operator's own.

The request being verified still holds the identifiers while the scan runs, so its own row is skipped;
other requests about the same person are scrubbed before the scan.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import redis
from django.apps import apps
from django.db import connection
from django.db.models import Model

from compliance_app.models import ErasureRequest, ExportRequest, PersonKey
from memory_admin.health import redis_client
from sessions_app.models import AgentSession
from tenants_app.models import Tenant

TEXT_SCAN_MIN_LENGTH = 5
_REQUEST_TABLE = ErasureRequest._meta.db_table


def _tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("select tablename from pg_tables where schemaname = 'public' order by tablename")
        return [row[0] for row in cursor.fetchall()]


_COLUMNS_SQL = (
    "select table_name, data_type from information_schema.columns where table_schema = 'public' "
    "and column_name = %s and (%s or data_type in ('text', 'character varying'))"
)


def _columns_named(name: str, *, text_only: bool = False) -> list[str]:
    return [table for table, _ in _typed_columns_named(name, text_only=text_only)]


def _typed_columns_named(name: str, *, text_only: bool = False) -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(_COLUMNS_SQL, [name, not text_only])
        return [(row[0], row[1]) for row in cursor.fetchall()]


def _references_named(name: str) -> list[str]:
    """Tables whose column `name` can hold a session's or memory's key: the uuid ones. A text column of that
    name holds something else (a session's own, client-chosen id), which any tenant may spell as a key."""
    return [table for table, data_type in _typed_columns_named(name) if data_type == "uuid"]


def _tenant_column(model: type[Model]) -> str | None:
    for field in model._meta.concrete_fields:
        if field.many_to_one and field.related_model is Tenant:
            return str(field.column)
    return None


@cache
def _tenant_scopes() -> dict[str, str]:
    """Per table, the condition (on alias `t`, one parameter: the tenant's id) that keeps the tenant's rows.

    A table with a tenant column is filtered by it; one without, by the tenant of the row it references (a
    session, a memory, a checkpoint…). Tables of no tenant are absent.
    """
    scopes: dict[str, str] = {Tenant._meta.db_table: 't."id" = %s'}
    for model in apps.get_models(include_auto_created=True):
        own = _tenant_column(model)
        if own is not None:
            scopes[model._meta.db_table] = f't."{own}" = %s'
            continue
        for field in model._meta.concrete_fields:
            parent = field.related_model if field.many_to_one else None
            if not isinstance(parent, type) or parent is model:
                continue
            through, key = _tenant_column(parent), parent._meta.pk
            if through is not None and key is not None:
                parent_rows = f'select "{key.column}" from "{parent._meta.db_table}" where "{through}" = %s'  # noqa: S608 - model names
                scopes[model._meta.db_table] = f't."{field.column}" in ({parent_rows})'
                break
    return scopes


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def scrub_other_requests(request: ErasureRequest) -> None:
    """Other requests about the same person keep only the keyed hash from now on: their identifiers go, and
    the free texts that may name the person (a note, the reason an earlier request was rejected)."""
    ErasureRequest.objects.filter(tenant=request.tenant, subject=request.subject).exclude(pk=request.pk).update(
        user_id="", identifiers=[], note="", rejection_reason=""
    )
    ExportRequest.objects.filter(tenant=request.tenant, subject=request.subject).update(user_id="", archive=None)


def scan(request: ErasureRequest) -> dict[str, int]:
    """Counts of what the scan found, by check; all zero means the person is gone."""
    findings: dict[str, int] = {}
    sessions = request.refs.get("sessions", [])
    memories = request.refs.get("memories", [])
    with connection.cursor() as cursor:
        for table in _references_named("session_id"):
            cursor.execute(f'select count(*) from "{table}" where session_id = any(%s::uuid[])', [sessions])  # noqa: S608
            findings[f"postgres:{table}.session_id"] = cursor.fetchone()[0]
        for table in _references_named("memory_id"):
            cursor.execute(f'select count(*) from "{table}" where memory_id = any(%s::uuid[])', [memories])  # noqa: S608
            findings[f"postgres:{table}.memory_id"] = cursor.fetchone()[0]
        for table in _columns_named("user_id", text_only=True):
            exclude = " and id <> %s" if table == _REQUEST_TABLE else ""
            params: list[Any] = [request.tenant_id, request.user_id] + ([request.pk] if exclude else [])
            tenant_filter = "tenant_id = %s and " if _has_column(cursor, table, "tenant_id") else ""
            if not tenant_filter:
                params = params[1:]
            cursor.execute(f'select count(*) from "{table}" where {tenant_filter}user_id = %s{exclude}', params)  # noqa: S608
            findings[f"postgres:{table}.user_id"] = cursor.fetchone()[0]
        for table, column in (("sessions_app_agentsession", "id"), ("memories_app_memory", "id")):
            refs = sessions if table.startswith("sessions") else memories
            cursor.execute(f'select count(*) from "{table}" where {column} = any(%s::uuid[])', [refs])  # noqa: S608
            findings[f"postgres:{table}.{column}"] = cursor.fetchone()[0]
        scopes = _tenant_scopes()
        for identifier in _text_identifiers(request):
            for table in _tables():
                exclude = " and id <> %s" if table == _REQUEST_TABLE else ""
                params = [_like(identifier)] + ([request.pk] if exclude else [])
                tenant_scope = scopes.get(table)
                if tenant_scope is not None:
                    exclude += f" and {tenant_scope}"
                    params.append(request.tenant_id)
                cursor.execute(f'select count(*) from "{table}" t where t::text like %s{exclude}', params)  # noqa: S608
                found = cursor.fetchone()[0]
                if found:
                    findings[f"postgres:{table}:text"] = findings.get(f"postgres:{table}:text", 0) + found
    findings["postgres:live_data_keys"] = PersonKey.objects.filter(
        tenant=request.tenant, subject=request.subject, destroyed_at__isnull=True
    ).count()
    findings.update(_scan_redis(request, sessions))
    return findings


def _has_column(cursor: Any, table: str, column: str) -> bool:
    cursor.execute(
        "select 1 from information_schema.columns where table_schema = 'public' and table_name = %s "
        "and column_name = %s",
        [table, column],
    )
    return cursor.fetchone() is not None


def _text_identifiers(request: ErasureRequest) -> list[str]:
    candidates = [request.user_id, *request.identifiers]
    return [text for text in dict.fromkeys(candidates) if len(text) >= TEXT_SCAN_MIN_LENGTH]


# Keys that name their tenant (idempotency records) or a session (hot context and tool state, see
# sessions_app.context.session_keys_pattern and memory_admin.api.idempotency.redis_key).
_TENANT_KEY = re.compile(rb"^mem:idem:(?P<tenant>[0-9a-f-]{36}):")
_SESSION_KEY = re.compile(rb"^mem:(?:ctx|tool):(?P<session>[0-9a-f-]{36})(?::|$)")


def _scan_redis(request: ErasureRequest, sessions: list[str]) -> dict[str, int]:
    """Keys of the erased sessions, and keys of the tenant (or of no tenant) holding an identifier."""
    identifiers = [text.encode() for text in _text_identifiers(request)]
    session_marks = [pk.encode() for pk in sessions]
    tenant = str(request.tenant_id).encode()
    hits = 0
    # Keys of a session that still exists, by session: counted once the session is known to be the tenant's.
    by_session: dict[str, int] = {}
    try:
        client = redis_client()
        for key in client.scan_iter(count=1000):
            if any(mark in key for mark in session_marks):
                hits += 1
                continue
            if not identifiers:
                continue
            named = _TENANT_KEY.match(key)
            if named is not None and named["tenant"] != tenant:
                continue  # another tenant's record: another person, whatever their id
            if any(identifier in key for identifier in identifiers) or any(
                identifier in value for value in _values(client, key) for identifier in identifiers
            ):
                of_session = _SESSION_KEY.match(key)
                if of_session is None:
                    hits += 1
                else:
                    session = of_session["session"].decode()
                    by_session[session] = by_session.get(session, 0) + 1
    except redis.RedisError:
        return {"redis:unreachable": 1}
    if by_session:
        # A session's keys are its tenant's; those of a session no longer in the database are counted too.
        elsewhere = {
            str(pk)
            for pk in AgentSession.all_objects.filter(pk__in=list(by_session))
            .exclude(tenant_id=request.tenant_id)
            .values_list("pk", flat=True)
        }
        hits += sum(count for session, count in by_session.items() if session not in elsewhere)
    return {"redis:keys": hits}


def _values(client: Any, key: bytes) -> list[bytes]:
    kind = client.type(key)
    if kind == b"string":
        value = client.get(key)
        return [value] if value is not None else []
    if kind == b"list":
        return list(client.lrange(key, 0, -1))
    if kind == b"hash":
        return [part for pair in client.hgetall(key).items() for part in pair]
    if kind == b"set":
        return list(client.smembers(key))
    if kind == b"zset":
        return list(client.zrange(key, 0, -1))
    return []
