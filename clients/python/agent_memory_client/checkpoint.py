"""`AgentMemorySaver`: LangGraph's checkpointer backed by the agent memory service.

    saver = AgentMemorySaver(base_url="http://127.0.0.1:8000", api_key="mk_...")
    graph = builder.compile(checkpointer=saver)

Threads are the service's sessions (of the API key's tenant), so their checkpoints show on the dashboard.
Channel values and writes are serialised here with LangGraph's serializer and stored by the service as
opaque typed blobs, each channel version once. Sync methods use `MemoryClient`, async ones
`AsyncMemoryClient` (native, no thread hop). A thread's `put`s and `put_writes` go through a group commit
(agent_memory_client.batching): what LangGraph asks to save while the thread's previous save request is in
flight travels in the next one, and each call returns once its own data is stored.

Options besides these are the clients' (timeout, retry, ...). `transport=` (an httpx transport: a proxy's, a
test's in-process application) serves the sync methods and `async_transport=` the async ones; a saver given
only one of them raises ValueError from the methods of the other kind, rather than reach the service around it.
An async transport given here serves one event loop: a saver used from several loops (threads each running
asyncio.run) should be left to build its own, one per loop.
"""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from agent_memory_client.batching import AsyncCoalescer, Coalescer
from agent_memory_client.client import AsyncMemoryClient, MemoryClient, clients_for, encode_body
from agent_memory_client.errors import ApiError, NotFoundError

PAGE = 100


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(data: str | None) -> bytes:
    return b"" if data is None else base64.b64decode(data)


def _prune_refusal(error: ApiError) -> NotImplementedError | None:
    """What PostgresSaver raises for keep_latest of threads that use a DeltaChannel, when the service refused
    such threads (it names them in `delta_channel_threads`); None for any other failure."""
    if error.status == 422 and "delta_channel_threads" in error.details:
        return NotImplementedError(error.message)
    return None


def _no_thread(error: NotFoundError, thread_id: str | None) -> bool:
    """Whether a 404 says that the thread does not exist (it names the thread), rather than that nothing is at
    the request's address (a base_url that points elsewhere), which is an error, not an empty thread."""
    return thread_id is not None and error.details.get("thread_id") == thread_id


def _json_metadata(metadata: CheckpointMetadata) -> CheckpointMetadata:
    """The metadata, checked to be JSON here (a TypeError, as PostgresSaver's put raises; a ValueError for NaN or
    an infinity), so that a value that is not fails this put alone, not the group commit's request it would
    share with other callers' saves."""
    encode_body(metadata)
    return metadata


def _is_checkpoint(op: dict[str, Any]) -> bool:
    return bool(op["op"] == "checkpoint")


def _op_size(op: dict[str, Any]) -> int:
    """A save op's size in a request's body: its JSON as the client encodes it, and the comma after it.

    Measured, not estimated: besides its blobs, an op carries the checkpoint document and its metadata, into
    which LangGraph copies every string of the run's `configurable`, so either can be most of the op. Its
    values are base64 text, which JSON writes as it is: they are counted by length instead of being encoded a
    second time (the request encodes them), the rest is encoded. What the request adds around its ops (a few
    bytes; its `user_id` is taken from the ops, where it was counted) is within the margin max_request_bytes
    keeps under the service's limit.
    """
    listed = "blobs" if "blobs" in op else "writes"
    size = len(encode_body({key: value for key, value in op.items() if key != listed})) + len(listed) + 7
    for item in op.get(listed) or ():
        blob = item.get("blob")
        size += len(encode_body({**item, "blob": ""})) + 1  # and its comma
        if blob is None:
            size += 2  # null, not ""
        elif blob:
            size += len(blob) if blob.isascii() else len(encode_body(blob)) - 2
    return size


def next_channel_version(current: str | int | None) -> str | int:
    """The version after `current`: a zero-padded counter and a random tail, e.g. "000000000004.9f3c01d2a6b7".

    Versions must differ between branches: the service stores each channel value once per (channel, version),
    so a fork (`update_state` on an old checkpoint) that numbered its values as the main line had would read
    the main line's values back. The counter keeps versions increasing as text, as LangGraph compares them;
    the tail tells two branches' writes of the same step apart. A thread that already counts in integers (one
    written before this scheme) goes on in integers, so its versions stay comparable with each other.
    """
    if isinstance(current, int):
        return current + 1
    counter = 0 if current is None else int(str(current).split(".")[0])
    return f"{counter + 1:012d}.{random.getrandbits(48):012x}"


class AgentMemorySaver(BaseCheckpointSaver[Any]):  # versions: text (next_channel_version), or int in old threads
    """A LangGraph checkpointer that stores threads in the agent memory service over its REST API."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        client: MemoryClient | None = None,
        async_client: AsyncMemoryClient | None = None,
        serde: SerializerProtocol | None = None,
        user_id: str = "",
        **client_options: Any,
    ) -> None:
        super().__init__(serde=serde)
        # Every write of a checkpointer is an upsert keyed by what it stores (the checkpoint id; the task and
        # index of a write), so a retry is harmless without an Idempotency-Key (the clients send them with
        # `safe=True`), and skipping it saves the service two Redis round trips per write.
        client_options.setdefault("idempotency_keys", False)
        self.client, self.async_client = clients_for(
            "AgentMemorySaver", base_url, api_key, client, async_client, client_options
        )
        # The person new threads work for (the service keeps it for erasure and the dashboard).
        self.user_id = user_id
        # A checkpoint is sent at once; a step's writes wait a moment for the checkpoint LangGraph saves next.
        # What is gathered goes in requests under the client's max_request_bytes (the service refuses bodies
        # over its limit, 1 MiB by default).
        self._saves = Coalescer(
            self._send_saves, urgent=_is_checkpoint, size=_op_size, max_bytes=self.client.max_request_bytes
        )
        self._asaves = AsyncCoalescer(
            self._asend_saves, urgent=_is_checkpoint, size=_op_size, max_bytes=self.async_client.max_request_bytes
        )

    def get_next_version(self, current: str | int | None, channel: None = None) -> str | int:
        return next_channel_version(current)

    # --- group commit -----------------------------------------------------------------------------------
    @staticmethod
    def _saves_body(ops: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {"ops": [{key: value for key, value in op.items() if key != "user_id"} for op in ops]}
        if user_id := next((op["user_id"] for op in ops if op.get("user_id")), None):
            body["user_id"] = user_id
        return body

    def _send_saves(self, thread_id: Any, ops: list[dict[str, Any]]) -> None:
        self.client.save_batch(str(thread_id), self._saves_body(ops))

    async def _asend_saves(self, thread_id: Any, ops: list[dict[str, Any]]) -> None:
        await self.async_client.save_batch(str(thread_id), self._saves_body(ops))

    # --- encoding ---------------------------------------------------------------------------------------
    def _put_request(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[str, dict[str, Any], RunnableConfig]:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        checkpoint_ns = configurable.get("checkpoint_ns", "")
        document = {key: value for key, value in checkpoint.items() if key != "channel_values"}
        values = checkpoint["channel_values"]
        blobs = []
        for channel, version in new_versions.items():
            type_, data = self.serde.dumps_typed(values[channel]) if channel in values else ("empty", None)
            blobs.append({"channel": channel, "version": str(version), "type": type_, "blob": _b64(data)})
        body = {
            "op": "checkpoint",
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint["id"],
            "parent_checkpoint_id": configurable.get("checkpoint_id"),
            "checkpoint": document,
            "metadata": _json_metadata(get_serializable_checkpoint_metadata(config, metadata)),
            "blobs": blobs,
        }
        user_id = configurable.get("user_id") or self.user_id
        if user_id:
            body["user_id"] = str(user_id)
        next_config: RunnableConfig = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns, "checkpoint_id": checkpoint["id"]}
        }
        return thread_id, body, next_config

    def _writes_request(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> tuple[str, dict[str, Any]]:
        configurable = config["configurable"]
        encoded = []
        for channel, value in writes:
            type_, data = self.serde.dumps_typed(value)
            encoded.append({"channel": channel, "type": type_, "blob": _b64(data)})
        body = {
            "op": "writes",
            "checkpoint_ns": configurable.get("checkpoint_ns", ""),
            "checkpoint_id": configurable["checkpoint_id"],
            "task_id": task_id,
            "task_path": task_path,
            "writes": encoded,
        }
        if user_id := configurable.get("user_id") or self.user_id:
            body["user_id"] = str(user_id)
        return str(configurable["thread_id"]), body

    def _tuple(self, item: dict[str, Any]) -> CheckpointTuple:
        thread_id, checkpoint_ns = item["thread_id"], item["checkpoint_ns"]
        checkpoint: Any = dict(item["checkpoint"])
        checkpoint["channel_values"] = {
            value["channel"]: self.serde.loads_typed((value["type"], _unb64(value["blob"])))
            for value in item["channel_values"]
            if value["type"] != "empty"
        }
        parent = item.get("parent_checkpoint_id")
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": checkpoint_ns,
                    "checkpoint_id": item["checkpoint_id"],
                }
            },
            checkpoint=checkpoint,
            metadata=item["metadata"],
            parent_config={
                "configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns, "checkpoint_id": parent}
            }
            if parent
            else None,
            pending_writes=[
                (write["task_id"], write["channel"], self.serde.loads_typed((write["type"], _unb64(write["blob"]))))
                for write in item["pending_writes"]
            ],
        )

    @staticmethod
    def _get_params(config: RunnableConfig) -> tuple[str, dict[str, Any]]:
        configurable = config["configurable"]
        params: dict[str, Any] = {"checkpoint_ns": configurable.get("checkpoint_ns", "")}
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            params["checkpoint_id"] = checkpoint_id
        params["limit"] = 1
        return str(configurable["thread_id"]), params

    @staticmethod
    def _list_params(
        config: RunnableConfig | None, filter: dict[str, Any] | None, before: RunnableConfig | None
    ) -> tuple[str | None, dict[str, Any]]:
        """The thread to list (None: every thread of the tenant) and the query parameters."""
        params: dict[str, Any] = {}
        if before is not None and (before_id := get_checkpoint_id(before)):
            params["before"] = before_id
        if filter:
            params["filter"] = filter
        if config is None:
            return None, params
        configurable = config["configurable"]
        if "checkpoint_ns" in configurable:
            params["checkpoint_ns"] = configurable["checkpoint_ns"]
        if checkpoint_id := get_checkpoint_id(config):
            params["checkpoint_id"] = checkpoint_id
        return str(configurable["thread_id"]), params

    def _page(self, thread_id: str | None, params: dict[str, Any], size: int) -> dict[str, Any] | None:
        try:
            if thread_id is None:
                return self.client.list_all_checkpoints(**params, limit=size)
            return self.client.list_checkpoints(thread_id, **params, limit=size)
        except NotFoundError as error:
            if not _no_thread(error, thread_id):
                raise
            return None

    async def _apage(self, thread_id: str | None, params: dict[str, Any], size: int) -> dict[str, Any] | None:
        try:
            if thread_id is None:
                return await self.async_client.list_all_checkpoints(**params, limit=size)
            return await self.async_client.list_checkpoints(thread_id, **params, limit=size)
        except NotFoundError as error:
            if not _no_thread(error, thread_id):
                raise
            return None

    @staticmethod
    def _next(thread_id: str | None, params: dict[str, Any], page: dict[str, Any]) -> bool:
        """Point `params` at the page after `page`; False on the last page. A page of one thread carries
        `next_after` from services that have it (its `next_before` would skip the rest of the last id's
        namespaces), `next_before` only from older ones."""
        if page.get("next_after") is not None:
            params["after"] = page["next_after"]
            return True
        if thread_id is None or page.get("next_before") is None:
            return False
        params["before"] = page["next_before"]
        return True

    # --- sync -------------------------------------------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, params = self._get_params(config)
        try:
            page = self.client.list_checkpoints(thread_id, **params)
        except NotFoundError as error:
            if not _no_thread(error, thread_id):
                raise
            return None
        return self._tuple(page["results"][0]) if page["results"] else None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        thread_id, params = self._list_params(config, filter, before)
        remaining = limit
        while remaining is None or remaining > 0:
            page = self._page(thread_id, params, PAGE if remaining is None else min(PAGE, remaining))
            if page is None:
                return
            for item in page["results"]:
                yield self._tuple(item)
            if remaining is not None:
                remaining -= len(page["results"])
            if not self._next(thread_id, params, page):
                return

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread_id, body, next_config = self._put_request(config, checkpoint, metadata, new_versions)
        self._saves.run(thread_id, body)
        return next_config

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        thread_id, body = self._writes_request(config, writes, task_id, task_path)
        self._saves.run(thread_id, body)

    def delete_thread(self, thread_id: str) -> None:
        try:
            self.client.delete_thread(str(thread_id))
        except NotFoundError as error:  # no such thread: nothing to delete
            if not _no_thread(error, str(thread_id)):
                raise

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            self.client.delete_for_runs([str(run_id) for run_id in run_ids])

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.client.copy_thread(str(source_thread_id), str(target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if thread_ids:
            try:
                self.client.prune_threads([str(thread_id) for thread_id in thread_ids], strategy)
            except ApiError as error:
                if (refusal := _prune_refusal(error)) is None:
                    raise
                raise refusal from error

    # --- async ------------------------------------------------------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, params = self._get_params(config)
        try:
            page = await self.async_client.list_checkpoints(thread_id, **params)
        except NotFoundError as error:
            if not _no_thread(error, thread_id):
                raise
            return None
        return self._tuple(page["results"][0]) if page["results"] else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        thread_id, params = self._list_params(config, filter, before)
        remaining = limit
        while remaining is None or remaining > 0:
            page = await self._apage(thread_id, params, PAGE if remaining is None else min(PAGE, remaining))
            if page is None:
                return
            for item in page["results"]:
                yield self._tuple(item)
            if remaining is not None:
                remaining -= len(page["results"])
            if not self._next(thread_id, params, page):
                return

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread_id, body, next_config = self._put_request(config, checkpoint, metadata, new_versions)
        await self._asaves.run(thread_id, body)
        return next_config

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        thread_id, body = self._writes_request(config, writes, task_id, task_path)
        await self._asaves.run(thread_id, body)

    async def adelete_thread(self, thread_id: str) -> None:
        try:
            await self.async_client.delete_thread(str(thread_id))
        except NotFoundError as error:  # no such thread: nothing to delete
            if not _no_thread(error, str(thread_id)):
                raise

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            await self.async_client.delete_for_runs([str(run_id) for run_id in run_ids])

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self.async_client.copy_thread(str(source_thread_id), str(target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if thread_ids:
            try:
                await self.async_client.prune_threads([str(thread_id) for thread_id in thread_ids], strategy)
            except ApiError as error:
                if (refusal := _prune_refusal(error)) is None:
                    raise
                raise refusal from error

    def close(self) -> None:
        self.client.close()
