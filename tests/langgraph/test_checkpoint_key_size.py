"""A checkpoint's channel value or a task's writes whose key (namespace, channel and version; namespace,
checkpoint id and task id) takes more UTF-8 bytes than PostgreSQL's index holds are refused with a 400 naming
the limit, before anything is written, though each field is within its length in characters; up to the limit
they are stored (bytes that do not compress, the worst case)."""

from __future__ import annotations

import base64
import random
from typing import Any

from conftest import World
from langgraph_app.api.serializers import MAX_KEY_BYTES
from langgraph_app.models import ChannelBlob, PendingWrite, ThreadCheckpoint

THREAD = "/api/v1/langgraph/threads/lg-wide"
VALUE = base64.b64encode(b"1").decode()


def _emoji(count: int, seed: int) -> str:
    # Four bytes each in UTF-8, at random: PostgreSQL cannot compress them below the index's limit.
    chosen = random.Random(seed)
    return "".join(chr(chosen.randint(0x1F300, 0x1FAFF)) for _ in range(count))


NAMESPACE = _emoji(512, 1)  # 2,048 bytes
CHANNEL = _emoji(256, 2)  # 1,024 bytes
WIDE_ID = _emoji(128, 3)  # 512 bytes


def _checkpoint(namespace: str, channel: str, version: str) -> dict[str, Any]:
    return {
        "checkpoint_ns": namespace,
        "checkpoint_id": "1f0-0001",
        "checkpoint": {"v": 4, "channel_versions": {channel: version}},
        "blobs": [{"channel": channel, "version": version, "type": "json", "blob": VALUE}],
    }


def _writes(namespace: str, checkpoint_id: str, task_id: str) -> dict[str, Any]:
    return {
        "checkpoint_ns": namespace,
        "checkpoint_id": checkpoint_id,
        "task_id": task_id,
        "writes": [{"channel": "x", "type": "json", "blob": VALUE}],
    }


def _refusal(response: Any, field: str) -> str:
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid", error
    [message] = error["details"]["fields"][field]
    message = str(message)
    assert str(MAX_KEY_BYTES) in message, message
    return message


def test_a_channel_value_whose_key_is_over_the_index_limit_is_a_400_naming_it_and_stores_nothing(
    world: World,
) -> None:
    response = world.acme.client.post(f"{THREAD}/checkpoints", _checkpoint(NAMESPACE, CHANNEL, WIDE_ID), format="json")

    assert "3584 bytes" in _refusal(response, "blobs")
    assert not ThreadCheckpoint.objects.exists() and not ChannelBlob.objects.exists()


def test_writes_whose_key_is_over_the_index_limit_are_a_400_naming_it_and_store_nothing(world: World) -> None:
    response = world.acme.client.post(f"{THREAD}/writes", _writes(NAMESPACE, WIDE_ID, WIDE_ID), format="json")

    assert "3072 bytes" in _refusal(response, "non_field_errors")
    assert not PendingWrite.objects.exists()


def test_a_batch_of_saves_with_a_key_over_the_index_limit_is_a_400_naming_the_save_and_stores_nothing(
    world: World,
) -> None:
    fine = {"op": "checkpoint", **_checkpoint("", "x", "1")}
    wide_writes = {"op": "writes", **_writes(NAMESPACE, WIDE_ID, WIDE_ID)}
    wide_blob = {"op": "checkpoint", **_checkpoint(NAMESPACE, CHANNEL, WIDE_ID)}

    for body in ({"ops": [fine, wide_writes]}, {"ops": [fine, wide_blob]}):
        response = world.acme.client.post(f"{THREAD}/saves", body, format="json")
        assert _refusal(response, "ops").startswith("ops[1]")

    assert not ThreadCheckpoint.objects.exists() and not PendingWrite.objects.exists()


def test_keys_of_exactly_the_limit_are_stored(world: World) -> None:
    client = world.acme.client
    version = "v" * (MAX_KEY_BYTES - 2048 - 512)
    checkpoint_id = "1f0-" + _emoji(98, 4)  # 396 bytes
    task_id = _emoji(32, 6) + "t" * (MAX_KEY_BYTES - 2048 - 396 - 128)

    saved = client.post(f"{THREAD}/checkpoints", _checkpoint(NAMESPACE, _emoji(128, 5), version), format="json")
    written = client.post(f"{THREAD}/writes", _writes(NAMESPACE, checkpoint_id, task_id), format="json")
    batch = {"ops": [{"op": "writes", **_writes(NAMESPACE, checkpoint_id, task_id[:-1] + "u")}]}
    batched = client.post(f"{THREAD}/saves", batch, format="json")

    assert (saved.status_code, written.status_code, batched.status_code) == (201, 200, 200), (
        saved.json(),
        written.json(),
        batched.json(),
    )
    assert ChannelBlob.objects.count() == 1 and PendingWrite.objects.count() == 2
