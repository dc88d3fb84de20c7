"""Hot statements run prepared, on Django's own connection.

Django binds parameters on the client (it quotes every value into the SQL text), so PostgreSQL parses and
plans each of its statements again. The statements every agent request runs (an append, a checkpoint save,
a session lookup) go through `run` instead: a psycopg cursor that binds on the server and keeps the
statement prepared on the (persistent) connection, planned once. It is the same connection Django uses, so
the statement takes part in the surrounding transaction, if any, errors arrive as Django's database errors,
and it shows in Django's query log (tests count queries through it) like any other.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import pq

from memory_admin.codec import dumps, is_plain, loads


def run(sql: str, params: Mapping[str, Any] | Sequence[Any], *, prepare: bool = True) -> list[tuple[Any, ...]]:
    """Execute `sql` prepared and return its rows (none for a statement without a result). `prepare=False`
    for a statement built in many shapes (a filter's clauses): each shape would take a place among the
    connection's prepared statements (psycopg keeps the last 100) and push out the hot ones."""
    wrapper = connections[DEFAULT_DB_ALIAS]  # one lookup (`connection` looks it up on every attribute)
    wrapper.ensure_connection()
    started = time.monotonic()
    with wrapper.wrap_database_errors, psycopg.Cursor(wrapper.connection) as cursor:
        cursor.execute(sql, params, prepare=prepare)
        # The result's status, not `cursor.description`: that builds a Column object per column on every call.
        result = cursor.pgresult
        rows = cursor.fetchall() if result is not None and result.status == pq.ExecStatus.TUPLES_OK else []
    if wrapper.queries_logged:
        wrapper.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return rows


def as_jsonb(value: dict[str, Any]) -> dict[str, Any]:
    """`value` as a jsonb column keeps it and gives it back. PostgreSQL keeps JSON numbers as numeric, so some
    floats come back as other numbers (1e16 as the integer 10000000000000000, -0.0 as 0.0, 1e300 as 301
    digits): what a size limit counts, an update compares, a checksum covers and a write answers must be what a
    read will give. A value without a float is returned as it is, without asking PostgreSQL."""
    if is_plain(value):
        return value
    kept: dict[str, Any] = loads(run("SELECT %s::jsonb::text", [dumps(value).decode()])[0][0])
    return kept
