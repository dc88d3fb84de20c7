"""LangGraph's long-term store (BaseStore) on the service: one batch of operations per request, run in order
in one transaction, each answered in place — get, search (namespace prefix, JSON filter, semantic query),
put (with index control and TTL, a null value deletes) and list_namespaces.

Semantic search uses the memories layer's embedder: an item put with `index` (a list of JSON paths, "$"
for the whole value) gets one vector of those fields' text; a query ranks such items by cosine similarity. A
query none of whose candidates has such a vector ranks nothing: it is answered as no query is (newest first,
scores null), without asking the embedder. A batch's puts are embedded together before it runs (see `_Vectors`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
import structlog
from django.db import OperationalError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from langgraph_app.models import StoreItem
from memories_app.embeddings import Embedder, get_embedder
from memories_app.services import embed_texts
from memory_admin.codec import loads
from memory_admin.errors import Conflict, ValidationFailed
from memory_admin.sql import run
from tenants_app.models import Tenant

MAX_SEARCH_LIMIT = 1000
# The namespace (labels joined by ".") and key of an item, in UTF-8 bytes, at most: both are in a btree index,
# whose entries PostgreSQL limits to about 2,700 bytes (tenant id and entry overhead included).
MAX_ITEM_ID_BYTES = 2600
COMPARISONS = {"$eq": "=", "$ne": "<>", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
SWEEP_BATCH = 1000
_TABLE = StoreItem._meta.db_table
# Runs of a batch the database chose as a deadlock's victim (see run_batch).
BATCH_ATTEMPTS = 3
logger = structlog.get_logger("memory.langgraph")


@dataclass(frozen=True)
class Op:
    kind: str
    args: dict[str, Any]


def join(namespace: list[str]) -> str:
    return ".".join(namespace)


# A row as the operations answer it (with the TTL, to know whether a read pushes its expiry back).
_ITEM_COLUMNS = "id, prefix, key, value::text, created_at, updated_at, ttl_minutes"
_ALIVE = "tenant_id = %s AND (expires_at IS NULL OR expires_at > %s)"
_EMBEDDING = StoreItem._meta.get_field("embedding")


def _item(row: tuple[Any, ...], score: float | None = None, *, with_score: bool = False) -> dict[str, Any]:
    _, prefix, key, value, created_at, updated_at, _ = row[:7]
    out: dict[str, Any] = {
        "namespace": prefix.split(".") if prefix else [],
        "key": key,
        "value": loads(value),
        "created_at": created_at.isoformat(),
        "updated_at": updated_at.isoformat(),
    }
    if with_score:
        out["score"] = score
    return out


def _refresh(rows: list[tuple[Any, ...]], now: datetime) -> None:
    """Push back the expiry of the rows that have a TTL, all in one statement. A row another transaction is
    writing is left to it (a put sets its expiry, a delete removes it): a read that waited for it, holding the
    rows it pushed back before, deadlocked with a batch putting those rows in another order."""
    ids = [row[0] for row in rows if row[6] is not None]
    if ids:
        run(
            f"UPDATE {_TABLE} SET expires_at = %s + make_interval(secs => ttl_minutes * 60) "  # noqa: S608
            f"WHERE id IN (SELECT id FROM {_TABLE} WHERE id = ANY(%s) AND ttl_minutes IS NOT NULL "
            "FOR UPDATE SKIP LOCKED)",
            [now, ids],
        )


def path_tokens(path: str) -> list[str]:
    """An index path's steps, as LangGraph reads them: fields separated by ".", and `[...]` (an array
    position or `*`) and `{...}` (several fields) each one step, wherever they stand."""
    tokens: list[str] = []
    field = ""
    position = 0
    while position < len(path):
        char = path[position]
        if char in "[{":
            if field:
                tokens.append(field)
                field = ""
            close = "]" if char == "[" else "}"
            depth, end = 1, position + 1
            while end < len(path) and depth:
                depth += {char: 1, close: -1}.get(path[end], 0)
                end += 1
            tokens.append(path[position:end])
            position = end
            continue
        if char == ".":
            if field:
                tokens.append(field)
            field = ""
        else:
            field += char
        position += 1
    if field:
        tokens.append(field)
    return tokens


def _as_text(found: Any) -> str | None:
    """A value found at a path as text to embed: scalars as Python writes them, objects and arrays as JSON."""
    if found is None:
        return None
    if isinstance(found, (dict, list)):
        return json.dumps(found, sort_keys=True, ensure_ascii=False)
    return str(found) if isinstance(found, (str, int, float, bool)) else None


def _step(found: Any, step: str) -> list[Any]:
    """What one path step selects in a value: nothing when the value has no such part."""
    if step.startswith("[") and step.endswith("]"):
        if not isinstance(found, list):
            return []
        if step == "[*]":
            return list(found)
        try:
            index = int(step[1:-1])
        except ValueError:
            return []
        if index < 0:
            index += len(found)
        return [found[index]] if 0 <= index < len(found) else []
    if step == "*":
        return list(found.values()) if isinstance(found, dict) else list(found) if isinstance(found, list) else []
    return [found[step]] if isinstance(found, dict) and step in found else []


def _fields(found: Any, step: str) -> list[str]:
    """The texts of a `{a,b.c}` step: each field followed through objects only."""
    if not isinstance(found, dict):
        return []
    texts = []
    for field in step[1:-1].split(","):
        names = path_tokens(field.strip())
        if not names:
            continue
        current: Any = found
        for name in names:
            current = current.get(name) if isinstance(current, dict) else None
        text = _as_text(current)
        if text is not None:
            texts.append(text)
    return texts


def texts_at_path(value: dict[str, Any], path: str) -> list[str]:
    """The texts LangGraph's stores embed for `value` at an index path: "$" (or "") is the whole value as JSON;
    `a.b`, `items[*].text`, `tags[0]`, `revisions[-1]`, `*` and `{a,b.c}` select fields (see `path_tokens`)."""
    if path in ("$", ""):
        return [json.dumps(value, sort_keys=True, ensure_ascii=False)]
    current: list[Any] = [value]
    for step in path_tokens(path):
        if step.startswith("{") and step.endswith("}"):
            # As in LangGraph, the fields in braces end the path: steps after them are not followed.
            return [text for found in current for text in _fields(found, step)]
        current = [selected for found in current for selected in _step(found, step)]
    return [text for text in map(_as_text, current) if text is not None]


def index_text(value: dict[str, Any], paths: list[str]) -> str:
    """The text embedded for `value`: the texts at its index paths, one per line, in the paths' order."""
    return "\n".join(text for path in paths for text in texts_at_path(value, path) if text)


def _is_operators(expected: Any) -> bool:
    return isinstance(expected, dict) and any(isinstance(name, str) and name.startswith("$") for name in expected)


# A JSON string that Python's float() reads as a finite number (LangGraph's InMemoryStore compares with float())
# and PostgreSQL's numeric can hold: at most NUMERIC_TEXT_MAX characters and a four-digit exponent (numeric
# refuses an exponent beyond 131071 or a scale beyond 16383; such text is compared as text is: never).
_NUMERIC_TEXT = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,4})?\s*$"
NUMERIC_TEXT_MAX = 1000
# The value at a path, a missing field read as JSON null (as `dict.get` reads it in InMemoryStore).
_AT = "coalesce(value #> %s::text[], 'null'::jsonb)"


def _comparison(path: list[str], name: str, operand: Any) -> tuple[str, list[Any]]:
    """SQL for `value at path <name> operand`, as LangGraph's InMemoryStore decides it: $eq/$ne are JSON
    equality (1 = 1.0; a missing field is null); with a number, an ordering compares numbers and numeric
    strings as numbers; with a string, strings by code point (as PostgresStore compares text). A value of
    another type never matches an ordering."""
    if name not in COMPARISONS:
        raise ValidationFailed(
            f"Unknown filter operator {name!r}; use one of {', '.join(COMPARISONS)}.", details={"operator": name}
        )
    sign = COMPARISONS[name]
    if name in ("$eq", "$ne"):
        return f"{_AT} {sign} %s::jsonb", [path, json.dumps(operand)]
    at, text = "(value #> %s::text[])", "(value #>> %s::text[])"
    if isinstance(operand, (int, float)) and not isinstance(operand, bool):
        return (
            f"CASE WHEN jsonb_typeof({at}) = 'number' THEN {at}::numeric {sign} %s::numeric "
            f"WHEN jsonb_typeof({at}) = 'string' AND length({text}) <= {NUMERIC_TEXT_MAX} AND {text} ~ %s "
            f"THEN {text}::numeric {sign} %s::numeric "
            "ELSE false END",
            [path, path, json.dumps(operand), path, path, path, _NUMERIC_TEXT, path, json.dumps(operand)],
        )
    if isinstance(operand, str):
        return (
            f"CASE WHEN jsonb_typeof({at}) = 'string' THEN {text} COLLATE \"C\" {sign} %s ELSE false END",
            [path, path, operand],
        )
    return "false", []


def _filter_sql(conditions: dict[str, Any], path: list[str] | None = None) -> tuple[list[str], list[Any]]:
    """LangGraph's filter as SQL conditions on `value` (as its InMemoryStore matches): a plain value must equal
    the field's, a nested object matches field by field, an object of `$` operators compares."""
    clauses: list[str] = []
    params: list[Any] = []
    for field, expected in conditions.items():
        where = [*(path or []), str(field)]
        if _is_operators(expected):
            for name, operand in expected.items():
                clause, values = _comparison(where, name, operand)
                clauses.append(clause)
                params.extend(values)
        elif isinstance(expected, dict):
            nested, values = _filter_sql(expected, where)
            clauses.append("jsonb_typeof(value #> %s::text[]) = 'object'")
            params.append(where)
            clauses.extend(nested)
            params.extend(values)
        else:
            clauses.append(f"{_AT} = %s::jsonb")
            params.extend([where, json.dumps(expected)])
    return clauses, params


_GET_SQL = f"SELECT {_ITEM_COLUMNS} FROM {_TABLE} WHERE {_ALIVE} AND prefix = %s AND key = %s"  # noqa: S608


def _get(tenant: Tenant, args: dict[str, Any], now: datetime, vectors: _Vectors) -> dict[str, Any] | None:
    rows = run(_GET_SQL, [tenant.pk, now, join(args["namespace"]), args["key"]])
    if not rows:
        return None
    if args.get("refresh_ttl", True):
        _refresh(rows, now)
    return _item(rows[0])


# An upsert in one statement; an expired row still waiting for the sweep is replaced as a new item.
_PUT_SQL = f"""
    INSERT INTO {_TABLE} AS s (tenant_id, prefix, key, value, embedding, embedding_model, index_paths, created_at,
                               updated_at, ttl_minutes, expires_at)
    VALUES (%(tenant)s, %(prefix)s, %(key)s, %(value)s::jsonb, %(embedding)s::vector, %(model)s, %(paths)s::jsonb,
            %(now)s, %(now)s, %(ttl)s, %(expires)s)
    ON CONFLICT (tenant_id, prefix, key) DO UPDATE SET
        value = EXCLUDED.value, embedding = EXCLUDED.embedding, embedding_model = EXCLUDED.embedding_model,
        index_paths = EXCLUDED.index_paths, updated_at = EXCLUDED.updated_at, ttl_minutes = EXCLUDED.ttl_minutes,
        expires_at = EXCLUDED.expires_at,
        created_at = CASE WHEN s.expires_at IS NOT NULL AND s.expires_at <= EXCLUDED.updated_at
                          THEN EXCLUDED.created_at ELSE s.created_at END
"""  # noqa: S608 - table name only


class _Vectors:
    """A batch's embeddings by text, kept across its runs (a run again after a deadlock pays for none twice).
    Its puts' texts are embedded together before it runs, outside its transaction: the items' locks are not
    held while the embedder answers. A query's is made when a run first finds a candidate with a vector (the
    batch's own puts included, so not knowable beforehand): a query with nothing to rank still costs no
    embedding and does not fail while the embedder is down."""

    def __init__(self, ops: list[Op]) -> None:
        texts = list(dict.fromkeys(text for op in ops if op.kind == "put" and (text := _put_text(op.args))))
        self._of = dict(zip(texts, embed_texts(texts), strict=True))

    def of(self, text: str) -> list[float]:
        if text not in self._of:
            self._of[text] = embed_texts([text])[0]
        return self._of[text]


def _put_text(args: dict[str, Any]) -> str:
    """The text a put embeds: its value's at its index paths; "" for none (no index, nothing there, a delete)."""
    value, index = args.get("value"), args.get("index")
    return index_text(value, list(index)) if value is not None and index else ""


def _put(tenant: Tenant, args: dict[str, Any], now: datetime, vectors: _Vectors) -> None:
    prefix, key, value = join(args["namespace"]), args["key"], args.get("value")
    if value is None:
        run(f"DELETE FROM {_TABLE} WHERE tenant_id = %s AND prefix = %s AND key = %s", [tenant.pk, prefix, key])  # noqa: S608
        return
    index = args.get("index")
    embedding, model = None, ""
    text = _put_text(args)
    if text:
        embedding, model = vectors.of(text), get_embedder().model_id
    ttl = args.get("ttl")
    run(
        _PUT_SQL,
        {
            "tenant": tenant.pk,
            "prefix": prefix,
            "key": key,
            "value": json.dumps(value),
            "embedding": _EMBEDDING.get_prep_value(embedding),
            "model": model,
            "paths": json.dumps(list(index)) if index else None,
            "now": now,
            "ttl": ttl,
            "expires": now + timedelta(minutes=ttl) if ttl is not None else None,
        },
    )


def _any_embedded(where: list[str], params: list[Any], model: str, *, prepare: bool) -> bool:
    """Whether an item matching `where` carries a vector of the embedder `model`, which a query would rank."""
    rows = run(
        f"SELECT EXISTS (SELECT 1 FROM {_TABLE} WHERE {' AND '.join(where)} "  # noqa: S608 - fixed fragments
        "AND embedding_model = %s AND embedding IS NOT NULL)",
        [*params, model],
        prepare=prepare,
    )
    return bool(rows[0][0])


def _search(tenant: Tenant, args: dict[str, Any], now: datetime, vectors: _Vectors) -> list[dict[str, Any]]:
    where, params = [_ALIVE], [tenant.pk, now]
    prefix = join(args.get("namespace_prefix") or [])
    if prefix:
        # The namespace and those below it: the strings from "prefix." up to "prefix/" ("/" follows "." in byte
        # order), so that the range reads the index whatever the plan (a prefix match of a parameter does not).
        where.append("(prefix = %s OR (prefix ~>=~ %s AND prefix ~<~ %s))")
        params += [prefix, prefix + ".", prefix + "/"]
    clauses, values = _filter_sql(args.get("filter") or {})
    where += clauses
    params += values
    limit, offset = args.get("limit", 10), args.get("offset", 0)
    query = args.get("query")
    scored: list[tuple[tuple[Any, ...], float | None]]
    model = get_embedder().model_id if query else ""
    if query and not _any_embedded(where, params, model, prepare=not clauses):
        query = None  # nothing to rank (answered as without a query), so no embedding to pay for or wait on
    if not query:
        rows = run(
            f"SELECT {_ITEM_COLUMNS} FROM {_TABLE} WHERE {' AND '.join(where)} "  # noqa: S608 - fixed fragments
            "ORDER BY updated_at DESC, prefix, key LIMIT %s OFFSET %s",
            [*params, limit, offset],
            prepare=not clauses,
        )
        scored = [(row, None) for row in rows]
    else:
        # Items embedded by this embedder first, by similarity; then the others, newest first.
        vector = _EMBEDDING.get_prep_value(vectors.of(query))
        rows = run(
            f"SELECT * FROM (SELECT {_ITEM_COLUMNS}, "  # noqa: S608 - fixed fragments
            "CASE WHEN embedding_model = %s AND embedding IS NOT NULL THEN embedding <=> %s::vector END AS distance "
            f"FROM {_TABLE} WHERE {' AND '.join(where)}) AS found "
            "ORDER BY distance ASC NULLS LAST, CASE WHEN distance IS NULL THEN updated_at END DESC NULLS LAST, "
            "prefix, key LIMIT %s OFFSET %s",
            [model, vector, *params, limit, offset],
            prepare=not clauses,
        )
        scored = [(row, None if row[7] is None else 1.0 - float(row[7])) for row in rows]
    if args.get("refresh_ttl", True):
        _refresh([row for row, _ in scored], now)
    return [_item(row, score, with_score=True) for row, score in scored]


def _label_conditions(pattern: list[str], *, at_end: bool) -> tuple[list[str], list[Any]]:
    """SQL matching the namespace's labels (`labels`, a text[]) against a prefix or suffix with '*' wildcards."""
    clauses: list[str] = ["cardinality(labels) >= %s"]
    params: list[Any] = [len(pattern)]
    for position, want in enumerate(pattern):
        if want == "*":
            continue
        if at_end:
            clauses.append("labels[cardinality(labels) - %s] = %s")
            params.extend([len(pattern) - 1 - position, want])
        else:
            clauses.append("labels[%s] = %s")
            params.extend([position + 1, want])
    return clauses, params


def _list_namespaces(tenant: Tenant, args: dict[str, Any], now: datetime, vectors: _Vectors) -> list[list[str]]:
    clauses: list[str] = []
    params: list[Any] = []
    for name in ("prefix", "suffix"):
        if args.get(name):
            more, more_params = _label_conditions(args[name], at_end=name == "suffix")
            clauses.extend(more)
            params.extend(more_params)
    max_depth = args.get("max_depth")
    shown = "labels[1:%s]" if max_depth is not None else "labels"
    sql = (
        f'SELECT DISTINCT ({shown}) COLLATE "C" AS namespace FROM ('  # noqa: S608 - fixed fragments only
        f"  SELECT DISTINCT string_to_array(prefix, '.') AS labels FROM {_TABLE}"
        "   WHERE tenant_id = %s AND (expires_at IS NULL OR expires_at > %s)"
        ") AS namespaces"
        + (" WHERE " + " AND ".join(clauses) if clauses else "")
        + " ORDER BY namespace LIMIT %s OFFSET %s"
    )
    values: list[Any] = ([max_depth] if max_depth is not None else []) + [tenant.pk, now, *params]
    values += [args.get("limit", 100), args.get("offset", 0)]
    return [list(row[0]) for row in run(sql, values, prepare=False)]


def sweep_expired(*, now: datetime | None = None, batch_size: int = SWEEP_BATCH) -> int:
    """Remove the store items of every tenant whose TTL ran out, `batch_size` rows per statement (each its own
    short transaction, skipping rows another sweep holds); returns how many went. Safe to run again."""
    moment = now or timezone.now()
    removed = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {_TABLE} WHERE id IN (SELECT id FROM {_TABLE} "  # noqa: S608 - table name only
                "WHERE expires_at IS NOT NULL AND expires_at <= %s LIMIT %s FOR UPDATE SKIP LOCKED)",
                [moment, batch_size],
            )
            deleted = int(cursor.rowcount)
        removed += deleted
        if deleted < batch_size:
            return removed


def items_to_reembed(model_id: str, *, now: datetime | None = None) -> QuerySet[StoreItem]:
    """Live items of every tenant embedded by another model than `model_id`, whose index paths are known."""
    alive = Q(expires_at__isnull=True) | Q(expires_at__gt=now or timezone.now())
    return (
        StoreItem.objects.filter(alive, embedding__isnull=False, index_paths__isnull=False)
        .exclude(embedding_model=model_id)
        .order_by("pk")
    )


def reembed_items(items: Sequence[StoreItem], *, embedder: Embedder) -> None:
    """Embed `items` (from `items_to_reembed`, with their value, paths and updated_at) again with `embedder`:
    the text of their index paths, as a put embeds it. An item put again meanwhile keeps what that put stored.
    EmbedderUnavailable (or EmbedderRefused) with nothing changed when the embedder fails."""
    texts = [index_text(item.value, list(item.index_paths or [])) for item in items]
    embedded = [(item, text) for item, text in zip(items, texts, strict=True) if text]
    vectors = embedder.embed([text for _, text in embedded]) if embedded else []
    vector_of = {item.pk: vector for (item, _), vector in zip(embedded, vectors, strict=True)}
    with transaction.atomic():
        for item in items:
            vector = vector_of.get(item.pk)
            StoreItem.objects.filter(pk=item.pk, updated_at=item.updated_at).exclude(
                embedding_model=embedder.model_id
            ).update(embedding=vector, embedding_model=embedder.model_id if vector is not None else "")


_Handler = Callable[[Tenant, dict[str, Any], datetime, _Vectors], Any]
_HANDLERS: dict[str, _Handler] = {
    "get": _get,
    "put": _put,
    "search": _search,
    "list_namespaces": _list_namespaces,
}


def _check_item_id(position: int, args: dict[str, Any]) -> None:
    size = len(join(args["namespace"]).encode()) + len(args["key"].encode())
    if size > MAX_ITEM_ID_BYTES:
        raise ValidationFailed(
            f"ops[{position}]: the namespace (its labels joined by '.') and the key take {size} bytes in UTF-8; "
            f"the store holds items whose namespace and key take at most {MAX_ITEM_ID_BYTES} together.",
            details={"op": position, "bytes": size, "limit": MAX_ITEM_ID_BYTES},
        )


# The locks of the items a batch puts or deletes, taken at its start in one order (their hashes'), whatever the
# batch's: two batches writing the same items in different orders then wait for each other instead of
# deadlocking. Advisory locks, not the rows' own: a new item's insert waits on another batch's insert of it,
# and there is no row to lock beforehand.
_LOCK_ITEMS_SQL = (
    "SELECT pg_advisory_xact_lock(lock) FROM (SELECT DISTINCT hashtextextended(item, 0) AS lock "
    "FROM unnest(%s::text[]) AS item ORDER BY lock) AS locks"
)


def _deadlocked(exc: OperationalError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, psycopg.Error) and cause.sqlstate == "40P01"  # deadlock_detected


def _lock_written_items(tenant: Tenant, ops: list[Op]) -> None:
    items = {json.dumps([str(tenant.pk), join(op.args["namespace"]), op.args["key"]]) for op in ops if op.kind == "put"}
    if len(items) > 1:  # (one lock alone is never taken out of order)
        run(_LOCK_ITEMS_SQL, [sorted(items)])


def run_batch(*, tenant: Tenant, ops: list[Op]) -> list[Any]:
    """Run the operations in order and answer each in place: an item or null (get), nothing (put), items
    with scores (search), namespaces (list_namespaces). Several operations run in one transaction (one is one
    statement, or a read and the push of its items' expiry). Expired items are invisible to every operation
    (`sweep_expired` removes them). ValidationFailed for an unknown operation or filter operator, or a put
    whose namespace and key together exceed MAX_ITEM_ID_BYTES (checked before anything runs); Unavailable (503)
    when a put or query needs the embedder (a query needs it when a candidate has a vector) and it cannot
    answer, Unprocessable (422) when the embedder refuses the text for good (nothing is stored then). The puts'
    texts are embedded before anything runs, in one call (see `_Vectors`).

    Batches writing the same items wait for each other, in whatever order each writes them; one the database
    still picks as a deadlock's victim runs again (with the vectors already made), up to BATCH_ATTEMPTS times,
    and is then a Conflict (409, nothing stored)."""
    handlers = []
    for position, op in enumerate(ops):
        handler = _HANDLERS.get(op.kind)
        if handler is None:
            raise ValidationFailed(f"Unknown store operation {op.kind!r}.", details={"op": op.kind})
        if op.kind == "put":
            _check_item_id(position, op.args)
        if op.kind == "search":
            _filter_sql(op.args.get("filter") or {})  # an unknown operator refused before any embedding is paid for
        handlers.append(handler)
    vectors = _Vectors(ops)
    now = timezone.now()
    # A deadlock the puts' lock order cannot prevent (with another writer: a re-embedding, an erasure) rolled
    # the attempt back whole: it is run again. Inside a caller's transaction, the caller decides.
    attempts = 1 if connection.in_atomic_block else BATCH_ATTEMPTS
    attempt = 1
    while True:
        try:
            return _run(tenant, ops, handlers, now, vectors)
        except OperationalError as exc:
            if not _deadlocked(exc):
                raise
            logger.info("store_batch_deadlocked", attempt=attempt)
            if attempt == attempts:  # contention, not an outage: not the 503 of an unavailable layer
                raise Conflict(
                    "The batch deadlocked with concurrent writes of the same store items and was rolled back; "
                    "send it again.",
                    details={"reason": "deadlock", "attempts": attempt},
                ) from exc
            attempt += 1


def _run(tenant: Tenant, ops: list[Op], handlers: list[_Handler], now: datetime, vectors: _Vectors) -> list[Any]:
    if len(ops) == 1:
        return [handlers[0](tenant, ops[0].args, now, vectors)]
    with transaction.atomic():
        _lock_written_items(tenant, ops)
        return [handler(tenant, op.args, now, vectors) for handler, op in zip(handlers, ops, strict=True)]
