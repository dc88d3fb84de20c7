"""The verification scan: after the purge, look everywhere for anything left of the person.

Two kinds of checks, each a count that must be zero:

- structural: rows that still reference the erased sessions and memories (by id), rows that still carry the
  person's user id in a `user_id` column, LangGraph store items in the person's namespaces, live data keys,
  Redis keys of the erased sessions;
- textual: every table of the database and every Redis key (name and value; a JSON value's strings as
  decoded, escapes and all) searched for the person's identifiers (the user id and any further identifiers on
  the request), each as a whole: "u1" is not found in "u12". Identifiers shorter than TEXT_SCAN_MIN_LENGTH
  are left to the structural checks: "42" would match half the database. Columns that hold another kind of
  name are not searched: the `user_id` columns (the structural check reads them exactly; another person's id
  is not this one's data), and those that name who did something (staff, a worker: `actor`, `filed_by`…), as
  are the staff accounts.

Every check looks at the request's tenant alone: a row belongs to a tenant through its `tenant` column or
through the row it hangs off (an event through its session, a revision through its memory), and a Redis key
through the tenant or the session it names. The same user id in another tenant is another person: their rows
are neither found nor counted. Tables and keys no tenant owns (staff accounts, the job log, queues) are
searched whole, as the operator's own.

The request being verified still holds the identifiers while the scan runs, so its own row is skipped, as
are the other open requests about the same person (they keep them until they close); the closed ones are
scrubbed before the scan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import redis
from django.apps import apps
from django.db import connection, transaction
from django.db.models import Model

from compliance_app import scope
from compliance_app.models import ErasureRequest, ErasureStatus, ExportRequest, PersonKey
from compliance_app.services import withdraw_exports
from langgraph_app.models import StoreItem
from memory_admin.health import redis_client
from sessions_app.models import AgentSession
from tenants_app.models import Tenant

TEXT_SCAN_MIN_LENGTH = 5
_REQUEST_TABLE = ErasureRequest._meta.db_table
# Requests done with: a later erasure of the person clears what they hold of them. An open one still needs the
# user id to preview, erase, purge and scan (blank, it would name no one). A failed one is done with too once a
# later request of the person runs its scan: that request now carries the person, and is the one purged again
# (services.purge_again refuses the cleared one: its scan would look for no one). Kept, the failed row's ids
# would fail every later scan of the person (or, skipped, stay held with no erasure left to clear them).
CLOSED = (ErasureStatus.VERIFIED, ErasureStatus.REJECTED, ErasureStatus.FAILED)
# Not searched for text: the staff accounts, columns naming who did something, and the user_id columns.
_UNSCANNED_TABLES = frozenset({"auth_user"})
_UNSCANNED_COLUMNS = frozenset({"user_id", "actor", "filed_by", "decided_by", "triggered_by", "updated_by"})


def _searched_columns() -> dict[str, list[str]]:
    """Per table, the columns the text pass reads: all but those above, the binary ones (whose text is hex,
    never an identifier as typed; payloads are sealed anyway) and the vectors (numbers only)."""
    columns: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "select c.table_name, c.column_name, c.udt_name from information_schema.columns c "
            "join pg_tables p on p.schemaname = c.table_schema and p.tablename = c.table_name "
            "where c.table_schema = 'public' order by c.table_name, c.ordinal_position"
        )
        for table, column, type_name in cursor.fetchall():
            if table in _UNSCANNED_TABLES or column in _UNSCANNED_COLUMNS or type_name in ("bytea", "vector"):
                continue
            columns.setdefault(table, []).append(column)
    return columns


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


def _starts_or_ends_a_word(character: str) -> bool:
    return character.isalnum() or character == "_"


def _whole(identifier: str) -> str:
    """A PostgreSQL regular expression finding the identifier as a whole, not inside a longer word ("u1" is
    not in "u12"); an edge of it that is not a letter, digit or underscore needs nothing around it."""
    body = re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", identifier)
    # jsonb read as text spells a line break, a tab or a control character as an escape (\n, \t, \u0001), whose
    # last letter is no part of the word after it: a person named right after one is found too.
    before = r"(^|[^[:alnum:]_]|\\[bfnrt]|\\u[0-9a-fA-F]{4})" if _starts_or_ends_a_word(identifier[0]) else ""
    after = "($|[^[:alnum:]_])" if _starts_or_ends_a_word(identifier[-1]) else ""
    return before + body + after


def _whole_bytes(identifier: str) -> re.Pattern[bytes]:
    """The same, for Redis's bytes (any byte of a UTF-8 sequence counts as part of a word)."""
    word = rb"[A-Za-z0-9_\x80-\xff]"
    before = rb"(?<!" + word + rb")" if _starts_or_ends_a_word(identifier[0]) else b""
    after = rb"(?!" + word + rb")" if _starts_or_ends_a_word(identifier[-1]) else b""
    return re.compile(before + re.escape(identifier.encode()) + after)


def scrub_other_requests(request: ErasureRequest, *, renew: Callable[[], object] | None = None) -> None:
    """The person's closed requests (verified, rejected, failed: this one carries the person now) keep only the
    keyed hash from now on: their identifiers go (a failed one's pass to this request first), and the free
    texts that may name the person (a note, the reason an earlier request was rejected). Open ones keep theirs
    until they close: a pending one erases whatever of the person arrived since, an approved one finishes.

    The person's exports are withdrawn (one filed since the approval holds what arrived since) and keep only
    the hash too.
    """
    others = ErasureRequest.objects.filter(tenant=request.tenant, subject=request.subject).exclude(pk=request.pk)
    # A failed request's further identifiers (an email the person was also known by) are searched for by this
    # request from now on, and stay with it should its scan fail too: scrubbed, the failed one names no one.
    failed = others.filter(status=ErasureStatus.FAILED).values_list("identifiers", flat=True)
    carried = list(dict.fromkeys([*request.identifiers, *(name for names in failed for name in names)]))
    if carried != request.identifiers:
        request.identifiers = carried
        request.save(update_fields=["identifiers"])
    others.filter(status__in=CLOSED).update(user_id="", identifiers=[], note="", rejection_reason="")
    if renew is not None:  # the purge's lease (see `scan`)
        renew()
    with transaction.atomic():
        withdraw_exports(tenant=request.tenant, subject=request.subject, actor="system")
        ExportRequest.objects.filter(tenant=request.tenant, subject=request.subject).update(user_id="", archive=None)


def _skipped_requests(request: ErasureRequest) -> list[str]:
    """The request itself and the other open requests about the same person: they hold the identifiers."""
    open_ones = ErasureRequest.objects.filter(tenant=request.tenant, subject=request.subject).exclude(status__in=CLOSED)
    return [str(request.pk), *(str(pk) for pk in open_ones.values_list("pk", flat=True))]


def scan(request: ErasureRequest, *, renew: Callable[[], object] | None = None) -> dict[str, int]:
    """Counts of what the scan found, by check; all zero means the person is gone.

    `renew` is called after each query (and every REDIS_KEYS_PER_RENEWAL keys of the Redis pass): the purge
    keeps its lease through a scan longer than the lease (a big database's text pass), which would otherwise
    be taken over, and its result thrown away, run after run."""
    renew = renew or (lambda: None)
    findings: dict[str, int] = {}
    skipped = _skipped_requests(request)
    sessions = request.refs.get("sessions", [])
    memories = request.refs.get("memories", [])
    with connection.cursor() as cursor:
        for table in _references_named("session_id"):
            cursor.execute(f'select count(*) from "{table}" where session_id = any(%s::uuid[])', [sessions])  # noqa: S608
            findings[f"postgres:{table}.session_id"] = cursor.fetchone()[0]
            renew()
        for table in _references_named("memory_id"):
            cursor.execute(f'select count(*) from "{table}" where memory_id = any(%s::uuid[])', [memories])  # noqa: S608
            findings[f"postgres:{table}.memory_id"] = cursor.fetchone()[0]
            renew()
        # A request that lost its user id (an older version blanked it) names no one: `user_id = ''` would
        # count the tenant's global memories and sessions without a user.
        # The text pass skips user_id columns (another person's id may contain this one's), so they are read
        # here, exactly, for every name the request gives the person.
        names = [name for name in dict.fromkeys([request.user_id, *request.identifiers]) if name]
        for table in _columns_named("user_id", text_only=True) if request.user_id else []:
            exclude = " and id <> all(%s::uuid[])" if table == _REQUEST_TABLE else ""
            params: list[Any] = [request.tenant_id, names] + ([skipped] if exclude else [])
            tenant_filter = "tenant_id = %s and " if _has_column(cursor, table, "tenant_id") else ""
            if not tenant_filter:
                params = params[1:]
            cursor.execute(f'select count(*) from "{table}" where {tenant_filter}user_id = any(%s){exclude}', params)  # noqa: S608
            findings[f"postgres:{table}.user_id"] = cursor.fetchone()[0]
            renew()
        for table, column in (("sessions_app_agentsession", "id"), ("memories_app_memory", "id")):
            refs = sessions if table.startswith("sessions") else memories
            cursor.execute(f'select count(*) from "{table}" where {column} = any(%s::uuid[])', [refs])  # noqa: S608
            findings[f"postgres:{table}.{column}"] = cursor.fetchone()[0]
            renew()
        scopes = _tenant_scopes()
        searched = _searched_columns() if _text_identifiers(request) else {}
        for identifier in _text_identifiers(request):
            for table, columns in searched.items():
                conditions, params = ["true"], []
                if table == _REQUEST_TABLE:
                    conditions.append("t.id <> all(%s::uuid[])")
                    params.append(skipped)
                if table in scopes:
                    conditions.append(scopes[table])
                    params.append(request.tenant_id)
                # The searched columns as one text; LIKE first, cheap, then the whole-word match on what it kept.
                # A jsonb column reads as JSON text, which spells a backslash or a quote in the id escaped.
                text = "concat_ws(' ', variadic array[" + ", ".join(f't."{column}"::text' for column in columns) + "])"
                spellings = list(dict.fromkeys([identifier, json.dumps(identifier, ensure_ascii=False)[1:-1]]))
                matches = " or ".join(["(found.text like %s and found.text ~ %s)"] * len(spellings))
                cursor.execute(
                    f'select count(*) from (select {text} as text from "{table}" t where {" and ".join(conditions)}) '  # noqa: S608
                    f"found where {matches}",
                    [*params, *(value for spelled in spellings for value in (_like(spelled), _whole(spelled)))],
                )
                found = cursor.fetchone()[0]
                renew()
                if found:
                    findings[f"postgres:{table}:text"] = findings.get(f"postgres:{table}:text", 0) + found
    # The store has no user_id column: the person's items are found by their namespaces, one put there after the
    # purge's store step included (the text pass does not look for an id shorter than TEXT_SCAN_MIN_LENGTH).
    findings[f"postgres:{StoreItem._meta.db_table}.prefix"] = (
        scope.Person(tenant=request.tenant, user_id=request.user_id).store_items().count() if request.user_id else 0
    )
    # Without the user id, a live key of the person is the returning person's: not this request's to count.
    findings["postgres:live_data_keys"] = (
        PersonKey.objects.filter(tenant=request.tenant, subject=request.subject, destroyed_at__isnull=True).count()
        if request.user_id
        else 0
    )
    renew()
    findings.update(_scan_redis(request, sessions, renew))
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


REDIS_KEYS_PER_RENEWAL = 10_000


def _scan_redis(request: ErasureRequest, sessions: list[str], renew: Callable[[], object]) -> dict[str, int]:
    """Keys of the erased sessions, and keys of the tenant (or of no tenant) holding an identifier."""
    identifiers = [_whole_bytes(text) for text in _text_identifiers(request)]
    session_marks = [pk.encode() for pk in sessions]
    tenant = str(request.tenant_id).encode()
    hits = 0
    # Keys of a session that still exists, by session: counted once the session is known to be the tenant's.
    by_session: dict[str, int] = {}
    try:
        client = redis_client()
        for seen, key in enumerate(client.scan_iter(count=1000), start=1):
            if seen % REDIS_KEYS_PER_RENEWAL == 0:
                renew()
            if any(mark in key for mark in session_marks):
                hits += 1
                continue
            if not identifiers:
                continue
            named = _TENANT_KEY.match(key)
            if named is not None and named["tenant"] != tenant:
                continue  # another tenant's record: another person, whatever their id
            if any(identifier.search(key) for identifier in identifiers) or any(
                _mentions(value, identifiers) for value in _values(client, key)
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


def _mentions(value: bytes, identifiers: list[re.Pattern[bytes]]) -> bool:
    """Whether a Redis value holds an identifier: as typed, or inside the JSON most values are. Idempotency
    records and tool state are written by `json.dumps`, which escapes every character outside ASCII ("ë" is
    `\\u00eb`, one outside the BMP a surrogate pair) and a line break before a name (`\\n` would read as a
    letter): their strings are matched as decoded."""
    if any(identifier.search(value) for identifier in identifiers):
        return True
    if b"\\" not in value:  # nothing escaped: the bytes above were the text
        return False
    try:
        document = json.loads(value)
    except ValueError:  # not JSON (or not UTF-8)
        return False
    return any(
        identifier.search(text.encode("utf-8", "surrogatepass"))
        for text in _strings(document)
        for identifier in identifiers
    )


def _strings(document: Any) -> Iterator[str]:
    """Every string of a decoded JSON document, object keys included."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


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
