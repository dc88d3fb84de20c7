"""`AgentMemoryStore`: LangGraph's long-term store (BaseStore) backed by the agent memory service.

    store = AgentMemoryStore(base_url=..., api_key=..., index={"fields": ["$"]}, ttl={"default_ttl": 60})
    graph = builder.compile(checkpointer=saver, store=store)

Each `batch`/`abatch` is one request to `/api/v1/langgraph/store/batch`, run by the service in order in one
transaction; a batch of more than MAX_OPS operations (the most the service takes in one), or whose operations
add up to more than the client's max_request_bytes (768 KiB by default, under the service's 1 MiB body limit),
goes as several such requests, in order, each its own transaction (an operation over the service's limit on
its own is its 413, after the requests before it were stored).

Reads the service refuses but LangGraph's InMemoryStore answers are answered as it does: a search or namespace
listing with `limit=0` is empty without a request, a blank `query` is no query, `max_depth=0` lists `()` when
any namespace matches, a `max_depth` over MAX_DEPTH (the most labels a namespace has) is MAX_DEPTH, and a limit
over MAX_LIMIT (the most one operation answers) is read in pages of MAX_LIMIT: the first in the batch's request,
the others in requests after it (each its own transaction, so they see the batch's writes), for as long as the
pages come back full. Pages past MAX_OFFSET, the furthest offset the service reads from, are empty.

Semantic search uses the service's embedder (the memories layer's): items put with indexing (the `index`
config's fields by default, or `index=[...]` / `index=False` per put) carry one vector of their indexed
fields' text. A store without an index config embeds nothing (a put's `index=[...]` included) and ignores a
search's `query` (the items come unranked, newest first, as without one), as LangGraph's stores do. TTLs
are in minutes, refreshed on reads unless told otherwise. Values are JSON: one that is not (bytes, a
datetime, a set, a pydantic model) is a TypeError, as PostgresStore raises.

`transport=` serves `batch` and `async_transport=` serves `abatch`, as for AgentMemorySaver: given only one,
the other raises ValueError.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from datetime import datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)

from agent_memory_client.client import AsyncMemoryClient, MemoryClient, clients_for, encode_body

PATH = "langgraph/store/batch"
MAX_OPS = 500
# The most results one search or list_namespaces operation answers (the service refuses a larger limit).
MAX_LIMIT = 1000
# The furthest offset the service reads from: a page past it is answered here, empty.
MAX_OFFSET = 10**6
# The most labels a namespace has (1,024 characters joined by "."): a deeper max_depth cuts nothing.
MAX_DEPTH = 512


class AgentMemoryStore(BaseStore):
    """A LangGraph BaseStore that keeps items in the agent memory service, scoped to the API key's tenant."""

    supports_ttl = True

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        client: MemoryClient | None = None,
        async_client: AsyncMemoryClient | None = None,
        index: dict[str, Any] | None = None,
        ttl: TTLConfig | None = None,
        **client_options: Any,
    ) -> None:
        self.client, self.async_client = clients_for(
            "AgentMemoryStore", base_url, api_key, client, async_client, client_options
        )
        # Without an index config nothing is embedded, whatever a put's `index=` says (as in LangGraph's stores).
        self.index_fields: list[str] | None = list((index or {}).get("fields") or ["$"]) if index else None
        self.ttl_config = ttl

    def _op(self, op: Op) -> dict[str, Any] | None:
        """The operation as the service takes it; None for one answered here (an empty page)."""
        if isinstance(op, (SearchOp, ListNamespacesOp)) and (op.limit == 0 or op.offset > MAX_OFFSET):
            return None
        if isinstance(op, GetOp):
            return {"op": "get", "namespace": list(op.namespace), "key": op.key, "refresh_ttl": op.refresh_ttl}
        if isinstance(op, PutOp):
            if op.index is False or self.index_fields is None:
                index: Any = False  # (a vector this store's searches would never rank, as their query is dropped)
            elif op.index is None:
                index = self.index_fields
            else:
                index = list(op.index)
            body: dict[str, Any] = {"op": "put", "namespace": list(op.namespace), "key": op.key, "value": op.value}
            if op.value is not None:
                body["index"] = index
                body["ttl"] = op.ttl
            return body
        if isinstance(op, SearchOp):
            return {
                "op": "search",
                "namespace_prefix": list(op.namespace_prefix),
                "filter": op.filter or {},
                "limit": min(op.limit, MAX_LIMIT),
                "offset": op.offset,
                # Without an index config a query ranks nothing, as in LangGraph's stores: it costs no embedding.
                "query": op.query if op.query and op.query.strip() and self.index_fields is not None else None,
                "refresh_ttl": op.refresh_ttl,
            }
        if isinstance(op, ListNamespacesOp):
            if op.max_depth == 0:  # whether any namespace matches: the answer is then `()`, else nothing
                body = {"op": "list_namespaces", "limit": 1, "offset": 0}
            else:
                body = {
                    "op": "list_namespaces",
                    "limit": min(op.limit, MAX_LIMIT),
                    "offset": op.offset,
                    "max_depth": op.max_depth if op.max_depth is None else min(op.max_depth, MAX_DEPTH),
                }
            for condition in op.match_conditions or ():
                body[condition.match_type] = list(condition.path)
            return body
        raise ValueError(f"Unknown store operation: {op!r}")

    @staticmethod
    def _item(data: dict[str, Any], search: bool) -> Item:
        fields = {
            "namespace": tuple(data["namespace"]),
            "key": data["key"],
            "value": data["value"],
            "created_at": datetime.fromisoformat(data["created_at"]),
            "updated_at": datetime.fromisoformat(data["updated_at"]),
        }
        if search:
            return SearchItem(**fields, score=data.get("score"))
        return Item(**fields)

    def _results(self, ops: list[Op], results: list[Any]) -> list[Result]:
        out: list[Result] = []
        for op, result in zip(ops, results, strict=True):
            if isinstance(op, GetOp):
                out.append(self._item(result, False) if result is not None else None)
            elif isinstance(op, SearchOp):
                out.append([self._item(item, True) for item in result])
            elif isinstance(op, ListNamespacesOp):
                out.append([tuple(namespace) for namespace in result])
            else:
                out.append(None)
        return out

    def _plan(self, ops: list[Op]) -> Generator[list[dict[str, Any]], list[Any], list[Result]]:
        """The batch's exchanges with the service: yields the operations to send, is sent their answers, and
        returns the batch's results. One exchange, and then one for each further page of the limits over
        MAX_LIMIT, for as long as their last pages came back full."""
        wire = [self._op(op) for op in ops]
        answers = iter((yield [body for body in wire if body is not None]))
        found: list[Any] = [[] if body is None else next(answers) for body in wire]
        for index, op in enumerate(ops):
            if isinstance(op, ListNamespacesOp) and op.max_depth == 0 and wire[index] is not None:
                found[index] = [[]][op.offset : op.offset + op.limit] if found[index] else []
        # The operations read in pages (a limit over MAX_LIMIT): their limits, and the page last asked of each.
        limits: dict[int, int] = {}
        asked: dict[int, dict[str, Any]] = {}
        for index, (op, body) in enumerate(zip(ops, wire, strict=True)):
            if body is None or not isinstance(op, (SearchOp, ListNamespacesOp)) or body["limit"] >= op.limit:
                continue
            if not (isinstance(op, ListNamespacesOp) and op.max_depth == 0):
                limits[index], asked[index] = op.limit, body
        full = {index: len(found[index]) == MAX_LIMIT for index in limits}
        while True:
            following = {
                index: {**body, "offset": body["offset"] + body["limit"], "limit": min(wanted, MAX_LIMIT)}
                for index, body in asked.items()
                if full[index]
                and (wanted := limits[index] - len(found[index])) > 0
                and body["offset"] + body["limit"] <= MAX_OFFSET
            }
            if not following:
                return self._results(ops, found)
            answers = iter((yield list(following.values())))
            for index, body in following.items():
                page = next(answers)
                found[index] += page
                full[index] = len(page) == body["limit"]
            asked = following

    def _send(self, wire: list[dict[str, Any]]) -> list[Any]:
        answers: list[Any] = []
        for chunk in _requests(wire, self.client.max_request_bytes):
            answers += self.client.request("POST", PATH, body={"ops": chunk}, keyed=_writes(chunk))["results"]
        return answers

    async def _asend(self, wire: list[dict[str, Any]]) -> list[Any]:
        answers: list[Any] = []
        for chunk in _requests(wire, self.async_client.max_request_bytes):
            answers += (await self.async_client.request("POST", PATH, body={"ops": chunk}, keyed=_writes(chunk)))[
                "results"
            ]
        return answers

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        plan = self._plan(list(ops))
        wire = next(plan)
        while True:
            try:
                wire = plan.send(self._send(wire))
            except StopIteration as done:
                results: list[Result] = done.value
                return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        plan = self._plan(list(ops))
        wire = next(plan)
        while True:
            try:
                wire = plan.send(await self._asend(wire))
            except StopIteration as done:
                results: list[Result] = done.value
                return results


def _requests(wire: list[dict[str, Any]], budget: int) -> list[list[dict[str, Any]]]:
    """The operations in consecutive requests of at most MAX_OPS operations whose JSON (as the client encodes
    it) adds up to at most `budget` bytes, as the checkpointer's saves go: the service refuses a body over its
    limit whole, although each operation fits. An operation larger than the budget goes alone (the service
    decides: one over its limit is its 413). A value JSON cannot write is its TypeError before anything is
    sent."""
    if len(wire) <= 1:
        return [wire] if wire else []
    chunks: list[list[dict[str, Any]]] = [[]]
    total = 0
    for op in wire:
        cost = len(encode_body(op)) + 1  # and the comma after it
        if chunks[-1] and (len(chunks[-1]) == MAX_OPS or total + cost > budget):
            chunks.append([])
            total = 0
        chunks[-1].append(op)
        total += cost
    return chunks


def _writes(ops: list[dict[str, Any]]) -> bool:
    """Whether a batch writes, and so carries an Idempotency-Key: a batch of reads (get, search,
    list_namespaces) answers a retry afresh, and its only effect, pushing back TTLs, is the same twice."""
    return any(op["op"] == "put" for op in ops)
