"""Channel values are decoded for people (the dashboard, a person's data export) whatever LangGraph's
serializer wrote: a dict with tuple keys reads as such, and what cannot be decoded is a placeholder, never an
error that breaks the page or the export."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any, TypedDict

import msgpack  # type: ignore[import-untyped]
import pytest
from agent_memory_client.checkpoint import AgentMemorySaver
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.graph import START, StateGraph

from compliance_app import services as compliance
from compliance_app.tasks import build_export
from conftest import World
from langgraph_app.display import decode_blob
from memory_admin.codec import bytes_sealer_for


class Board(TypedDict):
    grid: dict[tuple[int, int], str]


def _sealed(world: World, data: bytes) -> bytes:
    return bytes_sealer_for(tenant_id=world.acme.tenant.pk, user_id="u-grid")(data)


def test_a_dict_with_tuple_keys_decodes_with_its_keys_as_tuples(world: World) -> None:
    kind, data = JsonPlusSerializer().dumps_typed({"grid": {(0, 0): "o", (1, 2): "x"}, "plain": {"a": [1]}})

    assert decode_blob(kind, _sealed(world, data)) == {"grid": {(0, 0): "o", (1, 2): "x"}, "plain": {"a": [1]}}


def test_a_delta_channel_snapshot_decodes_as_its_value(world: World) -> None:
    kind, data = JsonPlusSerializer().dumps_typed(_DeltaSnapshot(["a", "b", "c"]))

    assert decode_blob(kind, _sealed(world, data)) == {"__type__": "DeltaSnapshot", "value": ["a", "b", "c"]}


@pytest.mark.parametrize(
    "data",
    [
        msgpack.packb({"k": 1})[:-1],  # cut short
        b"\xc1",  # a byte msgpack never uses
        msgpack.packb({msgpack.ExtType(2, b"\xc1"): 1}),  # an extension that cannot be read, as a key
        b"\x81" + msgpack.packb(["a", {"b": 1}]) + msgpack.packb("a map inside a key"),
        b"\x91" * 5000 + b"\xc0",  # nested deeper than any reader goes
    ],
    ids=["cut short", "unused byte", "bad extension as a key", "map inside a key", "too deep"],
)
def test_undecodable_msgpack_is_a_placeholder_not_an_error(world: World, data: bytes) -> None:
    assert decode_blob("msgpack", _sealed(world, data)) is not None  # and no exception


def test_a_persons_export_holds_a_state_with_tuple_keys(in_process_threads: dict[str, Any], world: World) -> None:
    saver = AgentMemorySaver(api_key=world.acme.raw_key, user_id="u-grid", **in_process_threads)
    builder = StateGraph(Board)
    builder.add_node("move", lambda state: {"grid": {**state["grid"], (1, 1): "x"}})
    builder.add_edge(START, "move")
    config: RunnableConfig = {"configurable": {"thread_id": "lg-grid"}}
    graph: Any = builder.compile(checkpointer=saver)
    graph.invoke(Board(grid={(0, 0): "o"}), config)
    export = compliance.file_export(
        tenant=world.acme.tenant, user_id="u-grid", legal_basis="gdpr_art_15", filed_by="test"
    )

    build_export(str(export.pk))  # raised TypeError, and the export stayed running for ever

    export.refresh_from_db()
    assert export.status == "ready", export.status
    archive = world.acme.client.get(f"/api/v1/export-requests/{export.pk}/archive")
    with zipfile.ZipFile(io.BytesIO(archive.content)) as files:
        rows = json.loads(files.read("langgraph.json"))
    assert rows[-1]["channel_values"]["grid"] == {"(0, 0)": "o", "(1, 1)": "x"}
