"""`AgentMemoryStore`: LangGraph's long-term store (BaseStore) backed by the agent memory service.

    store = AgentMemoryStore(base_url=..., api_key=..., index={"fields": ["$"]}, ttl={"default_ttl": 60})
    graph = builder.compile(checkpointer=saver, store=store)

Each `batch`/`abatch` is one request to `/api/v1/langgraph/store/batch`, run by the service in order in one
transaction; a batch of more than MAX_OPS operations (the most the service takes in one) goes as several such
requests, in order, each its own transaction. Semantic search uses the service's embedder (the memories
layer's): items put with indexing (the `index` config's fields by default, or `index=[...]` / `index=False`
per put) carry one vector of their indexed fields' text. TTLs are in minutes, refreshed on reads unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
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

from agent_memory_client.client import AsyncMemoryClient, MemoryClient

PATH = "langgraph/store/batch"
MAX_OPS = 500


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
        if (client is None or async_client is None) and (base_url is None or api_key is None):
            raise ValueError("Pass base_url and api_key, or both clients.")
        self.client = client or MemoryClient(base_url or "", api_key or "", **client_options)
        client_options.pop("transport", None)  # a sync transport serves only the sync client
        self.async_client = async_client or AsyncMemoryClient(base_url or "", api_key or "", **client_options)
        # Without an index config, puts are not embedded (as in LangGraph's stores) unless `index=` says so.
        self.index_fields: list[str] | None = list((index or {}).get("fields") or ["$"]) if index else None
        self.ttl_config = ttl

    def _op(self, op: Op) -> dict[str, Any]:
        if isinstance(op, GetOp):
            return {"op": "get", "namespace": list(op.namespace), "key": op.key, "refresh_ttl": op.refresh_ttl}
        if isinstance(op, PutOp):
            if op.index is False:
                index: Any = False
            elif op.index is None:
                index = self.index_fields or False
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
                "limit": op.limit,
                "offset": op.offset,
                "query": op.query,
                "refresh_ttl": op.refresh_ttl,
            }
        if isinstance(op, ListNamespacesOp):
            body = {"op": "list_namespaces", "limit": op.limit, "offset": op.offset, "max_depth": op.max_depth}
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

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        listed = list(ops)
        answers: list[Any] = []
        for start in range(0, len(listed), MAX_OPS):
            chunk = listed[start : start + MAX_OPS]
            body = {"ops": [self._op(op) for op in chunk]}
            answers += self.client.request("POST", PATH, body=body, keyed=_writes(chunk))["results"]
        return self._results(listed, answers)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        listed = list(ops)
        answers: list[Any] = []
        for start in range(0, len(listed), MAX_OPS):
            chunk = listed[start : start + MAX_OPS]
            body = {"ops": [self._op(op) for op in chunk]}
            answers += (await self.async_client.request("POST", PATH, body=body, keyed=_writes(chunk)))["results"]
        return self._results(listed, answers)


def _writes(ops: list[Op]) -> bool:
    """Whether a batch writes, and so carries an Idempotency-Key: a batch of reads (get, search,
    list_namespaces) answers a retry afresh, and its only effect, pushing back TTLs, is the same twice."""
    return any(isinstance(op, PutOp) for op in ops)
