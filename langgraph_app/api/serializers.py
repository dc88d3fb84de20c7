"""Request and response bodies of the LangGraph API. Channel values and writes travel as opaque typed blobs:
the serializer's type tag and the bytes in base64 (`blob`, null for none)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from langgraph_app.selectors import TupleView
from langgraph_app.services import Blob, CheckpointSave, Write, WritesSave
from memory_admin.api.serializers import StrictSerializer
from memory_admin.codec import open_bytes
from sessions_app.api.serializers import SESSION_ID_PATTERN, JSONObjectField

TEXT_ID = r"^[^\x00]{1,128}$"
# The texts of a channel value's key (namespace, channel, version) and of a write's (namespace, checkpoint id,
# task id), in UTF-8 bytes, at most: each key is a btree index's entry, which PostgreSQL limits to about 2,700
# bytes (session id and entry overhead included). Only multi-byte characters reach it within the fields' lengths.
MAX_KEY_BYTES = 2600


def _data(value: Any, where: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise serializers.ValidationError(f"{where}.blob must be base64 text or null.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise serializers.ValidationError(f"{where}.blob is not valid base64.") from None


def _text(item: dict[str, Any], name: str, where: str, *, max_length: int, blank: bool = False) -> str:
    value = item.get(name)
    if not isinstance(value, str) or (not blank and not value) or len(value) > max_length:
        raise serializers.ValidationError(f"{where}.{name} must be text of at most {max_length} characters.")
    return value


def check_key_size(where: str, names: str, *texts: str) -> None:
    """ValidationError naming MAX_KEY_BYTES when `texts` (a stored key, whose parts `names` names) exceed it."""
    size = sum(len(text.encode()) for text in texts)
    if size > MAX_KEY_BYTES:
        raise serializers.ValidationError(
            f"{where}{names} take {size} bytes in UTF-8; the service stores them up to {MAX_KEY_BYTES} together."
        )


def check_blob_keys(namespace: str, blobs: list[Blob], where: str = "blobs") -> None:
    for position, blob in enumerate(blobs):
        check_key_size(
            f"{where}[{position}]: ", "checkpoint_ns, channel and version", namespace, blob.channel, blob.version
        )


def check_writes_key(namespace: str, checkpoint_id: str, task_id: str, where: str = "") -> None:
    check_key_size(where, "checkpoint_ns, checkpoint_id and task_id", namespace, checkpoint_id, task_id)


def parse_blobs(data: Any, where: str = "blobs") -> list[Blob]:
    """[{"channel", "version", "type", "blob"}]: a channel's value at a version. Checked by hand: a list of
    nested serializers costs a millisecond per hundred items on a path every graph step takes."""
    if not isinstance(data, list):
        raise serializers.ValidationError(f"{where} must be a list.")
    blobs = []
    for position, item in enumerate(data):
        at = f"{where}[{position}]"
        if not isinstance(item, dict) or set(item) - {"channel", "version", "type", "blob"}:
            raise serializers.ValidationError(f"{at} must be an object with channel, version, type, blob.")
        blobs.append(
            Blob(
                channel=_text(item, "channel", at, max_length=256),
                version=_text(item, "version", at, max_length=128),
                type=_text(item, "type", at, max_length=32),
                data=_data(item.get("blob"), at),
            )
        )
    return blobs


def parse_writes(data: Any, where: str = "writes") -> list[Write]:
    """[{"channel", "type", "blob"}] in the task's order."""
    if not isinstance(data, list):
        raise serializers.ValidationError(f"{where} must be a list.")
    writes = []
    for position, item in enumerate(data):
        at = f"{where}[{position}]"
        if not isinstance(item, dict) or set(item) - {"channel", "type", "blob"}:
            raise serializers.ValidationError(f"{at} must be an object with channel, type, blob.")
        writes.append(
            Write(
                channel=_text(item, "channel", at, max_length=256),
                type=_text(item, "type", at, max_length=32),
                data=_data(item.get("blob"), at),
            )
        )
    return writes


class BlobListField(serializers.ListField):
    def to_internal_value(self, data: Any) -> list[Blob]:
        return parse_blobs(data)


class WriteListField(serializers.ListField):
    def to_internal_value(self, data: Any) -> list[Write]:
        return parse_writes(data)


@extend_schema_serializer(component_name="LangGraphCheckpointIn")  # checkpoints_app has a CheckpointIn too
class CheckpointIn(StrictSerializer):
    checkpoint_ns = serializers.CharField(max_length=512, allow_blank=True, default="", trim_whitespace=False)
    checkpoint_id = serializers.RegexField(TEXT_ID, help_text="LangGraph's checkpoint id (ordered: newest greatest).")
    parent_checkpoint_id = serializers.RegexField(TEXT_ID, required=False, allow_null=True, default=None)
    checkpoint = JSONObjectField(help_text="The checkpoint document; its `channel_values` are sent as `blobs`.")
    metadata = JSONObjectField(required=False, default=dict)
    blobs = BlobListField(required=False, default=list, help_text="Values of the channels at their new versions.")
    user_id = serializers.CharField(
        max_length=256, required=False, default="", help_text="The person the thread works for (a new thread only)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            check_blob_keys(attrs["checkpoint_ns"], attrs["blobs"])
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"blobs": exc.detail}) from None
        return attrs


class CheckpointSavedOut(serializers.Serializer[Any]):
    checkpoint_ns = serializers.CharField(allow_blank=True)
    checkpoint_id = serializers.CharField()


class WritesIn(StrictSerializer):
    checkpoint_ns = serializers.CharField(max_length=512, allow_blank=True, default="", trim_whitespace=False)
    checkpoint_id = serializers.RegexField(TEXT_ID)
    task_id = serializers.RegexField(TEXT_ID)
    task_path = serializers.CharField(max_length=512, allow_blank=True, default="", trim_whitespace=False)
    writes = WriteListField(help_text="The task's writes in order; special channels take LangGraph's fixed indexes.")
    user_id = serializers.CharField(
        max_length=256, required=False, default="", help_text="The person the thread works for (a new thread only)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        check_writes_key(attrs["checkpoint_ns"], attrs["checkpoint_id"], attrs["task_id"])
        return attrs


class WritesOut(serializers.Serializer[Any]):
    stored = serializers.IntegerField(help_text="How many writes the request carried (all are stored or kept).")


# --- a batch of saves (the checkpointer's put and put_writes, gathered) --------------------------------------

MAX_SAVES = 200
_TEXT_ID = re.compile(TEXT_ID)
_SAVE_FIELDS = {
    "checkpoint": {"op", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "checkpoint", "metadata", "blobs"},
    "writes": {"op", "checkpoint_ns", "checkpoint_id", "task_id", "task_path", "writes"},
}


def _id(item: dict[str, Any], name: str, where: str, *, nullable: bool = False) -> Any:
    value = item.get(name)
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not _TEXT_ID.fullmatch(value):
        raise serializers.ValidationError(f"{where}.{name} must be 1-128 characters without NUL.")
    return value


def _object(item: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = item.get(name, {})
    if not isinstance(value, dict):
        raise serializers.ValidationError(f"{where}.{name} must be a JSON object.")
    return value


def _save(item: Any, where: str) -> CheckpointSave | WritesSave:
    if not isinstance(item, dict) or not isinstance(item.get("op"), str) or item["op"] not in _SAVE_FIELDS:
        raise serializers.ValidationError(f"{where}.op must be checkpoint or writes.")
    unknown = set(item) - _SAVE_FIELDS[item["op"]]
    if unknown:
        raise serializers.ValidationError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}.")
    namespace = _text(item, "checkpoint_ns", where, max_length=512, blank=True) if "checkpoint_ns" in item else ""
    if item["op"] == "checkpoint":
        if "checkpoint" not in item:
            raise serializers.ValidationError(f"{where}.checkpoint is required.")
        blobs = parse_blobs(item.get("blobs", []), f"{where}.blobs")
        check_blob_keys(namespace, blobs, f"{where}.blobs")
        return CheckpointSave(
            checkpoint_ns=namespace,
            checkpoint_id=_id(item, "checkpoint_id", where),
            parent_checkpoint_id=_id(item, "parent_checkpoint_id", where, nullable=True),
            checkpoint=_object(item, "checkpoint", where),
            metadata=_object(item, "metadata", where),
            blobs=blobs,
        )
    checkpoint_id, task_id = _id(item, "checkpoint_id", where), _id(item, "task_id", where)
    check_writes_key(namespace, checkpoint_id, task_id, f"{where}: ")
    return WritesSave(
        checkpoint_ns=namespace,
        checkpoint_id=checkpoint_id,
        task_id=task_id,
        task_path=_text(item, "task_path", where, max_length=512, blank=True) if "task_path" in item else "",
        writes=parse_writes(item.get("writes"), f"{where}.writes"),
    )


def _saves(data: Any) -> list[CheckpointSave | WritesSave]:
    if not isinstance(data, list) or not data or len(data) > MAX_SAVES:
        raise serializers.ValidationError(f"Must be a list of 1-{MAX_SAVES} saves.")
    return [_save(item, f"ops[{position}]") for position, item in enumerate(data)]


class SaveListField(serializers.ListField):
    def to_internal_value(self, data: Any) -> list[CheckpointSave | WritesSave]:
        return _saves(data)


def parse_saves(data: Any) -> tuple[list[CheckpointSave | WritesSave], str]:
    """SavesIn's body checked by hand (the hot path of every graph step): the saves and the user id."""
    if not isinstance(data, dict) or set(data) - {"ops", "user_id"}:
        raise serializers.ValidationError({"non_field_errors": ["Send ops and, for a new thread, user_id."]})
    user_id = data.get("user_id", "")
    if not isinstance(user_id, str) or len(user_id) > 256:
        raise serializers.ValidationError({"user_id": ["Must be text of at most 256 characters."]})
    try:
        return _saves(data.get("ops")), user_id
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({"ops": exc.detail}) from None


class SavesIn(StrictSerializer):
    ops = SaveListField(
        min_length=1,  # (checked by _saves; given here for the schema)
        max_length=MAX_SAVES,
        help_text="Stored in order in one transaction: {op: checkpoint, ...CheckpointIn's fields} (LangGraph's "
        "put) and {op: writes, ...WritesIn's fields} (put_writes).",
    )
    user_id = serializers.CharField(
        max_length=256, required=False, default="", help_text="The person the thread works for (a new thread only)."
    )


class SavesOut(serializers.Serializer[Any]):
    checkpoints = serializers.IntegerField(help_text="Checkpoints stored.")
    writes = serializers.IntegerField(help_text="Writes the request carried (all are stored or kept).")


class CopyIn(StrictSerializer):
    target_thread_id = serializers.RegexField(SESSION_ID_PATTERN)


class CountOut(serializers.Serializer[Any]):
    count = serializers.IntegerField()


class PruneIn(StrictSerializer):
    thread_ids = serializers.ListField(child=serializers.CharField(max_length=128), max_length=1000)
    strategy = serializers.ChoiceField(choices=["keep_latest", "delete"], default="keep_latest")


class DeleteForRunsIn(StrictSerializer):
    run_ids = serializers.ListField(child=serializers.CharField(max_length=256), max_length=1000)


def _b64(blob: bytes | memoryview | None) -> str | None:
    """A stored (sealed) value as the client serialised it, in base64."""
    return None if blob is None else base64.b64encode(open_bytes(blob)).decode("ascii")


# The longest text each query parameter of the checkpoint listings may be.
QUERY_MAX_LENGTH = {"checkpoint_ns": 512, "checkpoint_id": 128, "before": 128}


def tuple_page(views: list[TupleView], limit: int) -> dict[str, Any]:
    """A page of tuples, newest first; when the page is full, where the next one starts: `next_after` (the
    last row's position) and, for clients that predate it, `next_before` (its checkpoint id, which skips the
    rest of that id's namespaces)."""
    full = len(views) == limit
    return {
        "results": [tuple_out(view) for view in views],
        "next_before": views[-1].row.checkpoint_id if full else None,
        "next_after": position_out(views[-1]) if full else None,
    }


def position_out(view: TupleView) -> dict[str, str]:
    row = view.row
    return {"checkpoint_id": row.checkpoint_id, "thread_id": view.thread_id, "checkpoint_ns": row.checkpoint_ns}


def tuple_out(view: TupleView) -> dict[str, Any]:
    row = view.row
    return {
        "thread_id": view.thread_id,
        "checkpoint_ns": row.checkpoint_ns,
        "checkpoint_id": row.checkpoint_id,
        "parent_checkpoint_id": row.parent_checkpoint_id or None,
        "checkpoint": {**row.checkpoint, "id": row.checkpoint_id},
        "metadata": row.metadata,
        "channel_values": [
            {"channel": blob.channel, "version": blob.version, "type": blob.type, "blob": _b64(blob.blob)}
            for blob in view.blobs
        ],
        "pending_writes": [
            {
                "task_id": write.task_id,
                "task_path": write.task_path,
                "idx": write.idx,
                "channel": write.channel,
                "type": write.type,
                "blob": _b64(write.blob),
            }
            for write in view.writes
        ],
    }


class TypedBlobOut(serializers.Serializer[Any]):
    channel = serializers.CharField()
    version = serializers.CharField()
    type = serializers.CharField()
    blob = serializers.CharField(allow_null=True, help_text="base64")


class PendingWriteOut(serializers.Serializer[Any]):
    task_id = serializers.CharField()
    task_path = serializers.CharField(allow_blank=True)
    idx = serializers.IntegerField()
    channel = serializers.CharField()
    type = serializers.CharField()
    blob = serializers.CharField(allow_null=True, help_text="base64")


class TupleOut(serializers.Serializer[Any]):
    thread_id = serializers.CharField()
    checkpoint_ns = serializers.CharField(allow_blank=True)
    checkpoint_id = serializers.CharField()
    parent_checkpoint_id = serializers.CharField(allow_null=True)
    checkpoint = serializers.JSONField()
    metadata = serializers.JSONField()
    channel_values = TypedBlobOut(many=True)
    pending_writes = PendingWriteOut(many=True)


class PositionOut(serializers.Serializer[Any]):
    checkpoint_id = serializers.CharField()
    thread_id = serializers.CharField()
    checkpoint_ns = serializers.CharField(allow_blank=True)


class TuplePageOut(serializers.Serializer[Any]):
    results = TupleOut(many=True)
    next_after = PositionOut(
        allow_null=True, help_text="Pass as `after` (JSON) for the next page; null on the last page."
    )
    next_before = serializers.CharField(
        allow_null=True,
        help_text="The last checkpoint id of a full page (null on the last page). As `before` it skips the rest "
        "of that id's namespaces: page with `after`.",
    )


class TenantTuplePageOut(serializers.Serializer[Any]):
    results = TupleOut(many=True)
    next_after = PositionOut(
        allow_null=True, help_text="Pass as `after` (JSON) for the next page; null on the last page."
    )


# --- the store ------------------------------------------------------------------------------------------

MAX_STORE_OPS = 500


# As StoreItem.prefix holds it: the labels joined by ".".
NAMESPACE_MAX_LENGTH = 1024
# The most labels a namespace has (of one character each), so the deepest max_depth that cuts anything.
MAX_DEPTH = (NAMESPACE_MAX_LENGTH + 1) // 2


def _namespace(value: Any, where: str, *, allow_empty: bool = False) -> list[str]:
    """A namespace's labels. A "*" is a label like any other (as in LangGraph's stores), but in list_namespaces'
    prefix and suffix, where it matches any label (langgraph_app.store._label_conditions)."""
    if not isinstance(value, list) or (not value and not allow_empty):
        raise serializers.ValidationError(f"{where} must be a list of labels.")
    for label in value:
        if not isinstance(label, str) or not label or "." in label or len(label) > 256:
            raise serializers.ValidationError(f"{where}: each label is 1-256 characters without '.'.")
    if sum(len(label) + 1 for label in value) - 1 > NAMESPACE_MAX_LENGTH:
        raise serializers.ValidationError(
            f"{where}: the labels joined by '.' are at most {NAMESPACE_MAX_LENGTH} characters."
        )
    return value


def _int(value: Any, where: str, *, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise serializers.ValidationError(f"{where} must be an integer in {low}-{high}.")
    return value


_OP_FIELDS = {
    "get": {"op", "namespace", "key", "refresh_ttl"},
    "put": {"op", "namespace", "key", "value", "index", "ttl"},
    "search": {"op", "namespace_prefix", "filter", "limit", "offset", "query", "refresh_ttl"},
    "list_namespaces": {"op", "prefix", "suffix", "max_depth", "limit", "offset"},
}


def _store_op(item: Any, where: str) -> Any:
    from langgraph_app.store import MAX_SEARCH_LIMIT, Op

    if not isinstance(item, dict) or not isinstance(item.get("op"), str) or item["op"] not in _OP_FIELDS:
        raise serializers.ValidationError(f"{where}.op must be one of {', '.join(_OP_FIELDS)}.")
    kind = item["op"]
    unknown = set(item) - _OP_FIELDS[kind]
    if unknown:
        raise serializers.ValidationError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}.")
    args: dict[str, Any] = {}
    if kind in ("get", "put"):
        args["namespace"] = _namespace(item.get("namespace"), f"{where}.namespace")
        key = item.get("key")
        if not isinstance(key, str) or not key or len(key) > 512:
            raise serializers.ValidationError(f"{where}.key must be 1-512 characters.")
        args["key"] = key
    if "refresh_ttl" in item:
        if not isinstance(item["refresh_ttl"], bool):
            raise serializers.ValidationError(f"{where}.refresh_ttl must be true or false.")
        args["refresh_ttl"] = item["refresh_ttl"]
    if kind == "put":
        value = item.get("value")
        if value is not None and not isinstance(value, dict):
            raise serializers.ValidationError(f"{where}.value must be an object, or null to delete.")
        args["value"] = value
        index = item.get("index", False)
        if index is not False and (not isinstance(index, list) or not all(isinstance(p, str) for p in index)):
            raise serializers.ValidationError(f"{where}.index must be false or a list of JSON paths.")
        args["index"] = index or None
        ttl = item.get("ttl")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= 10**7):
            raise serializers.ValidationError(f"{where}.ttl must be a positive number of minutes, or null.")
        args["ttl"] = ttl
    if kind == "search":
        args["namespace_prefix"] = _namespace(
            item.get("namespace_prefix", []), f"{where}.namespace_prefix", allow_empty=True
        )
        conditions = item.get("filter") or {}
        if not isinstance(conditions, dict):
            raise serializers.ValidationError(f"{where}.filter must be an object.")
        args["filter"] = conditions
        query = item.get("query")
        if query is not None and (not isinstance(query, str) or not query.strip()):
            raise serializers.ValidationError(f"{where}.query must be non-empty text, or null.")
        args["query"] = query
    if kind in ("search", "list_namespaces"):
        args["limit"] = _int(item.get("limit", 10), f"{where}.limit", low=1, high=MAX_SEARCH_LIMIT)
        args["offset"] = _int(item.get("offset", 0), f"{where}.offset", low=0, high=10**6)
    if kind == "list_namespaces":
        for name in ("prefix", "suffix"):
            if item.get(name) is not None:
                args[name] = _namespace(item[name], f"{where}.{name}")
        if item.get("max_depth") is not None:
            args["max_depth"] = _int(item["max_depth"], f"{where}.max_depth", low=1, high=MAX_DEPTH)
    return Op(kind=kind, args=args)


def store_ops(data: Any) -> list[Any]:
    """StoreBatchIn's `ops` checked (by its field, and by the hot lane's parser): the store's operations."""
    if not isinstance(data, list) or not data or len(data) > MAX_STORE_OPS:
        raise serializers.ValidationError(f"Must be a list of 1-{MAX_STORE_OPS} operations.")
    return [_store_op(item, f"ops[{position}]") for position, item in enumerate(data)]


class StoreOpListField(serializers.ListField):
    def to_internal_value(self, data: Any) -> list[Any]:
        return store_ops(data)


class StoreBatchIn(StrictSerializer):
    ops = StoreOpListField(
        min_length=1,  # (checked by store_ops; given here for the schema)
        max_length=MAX_STORE_OPS,
        help_text="Operations run in order in one transaction: {op: get|put|search|list_namespaces, ...} "
        "with the fields of LangGraph's GetOp, PutOp (index: false or JSON paths; ttl in minutes; value null "
        "deletes), SearchOp (namespace_prefix, filter, query, limit, offset) and ListNamespacesOp.",
    )


class StoreBatchOut(serializers.Serializer[Any]):
    results = serializers.ListField(
        child=serializers.JSONField(allow_null=True), help_text="One answer per operation, in order."
    )
