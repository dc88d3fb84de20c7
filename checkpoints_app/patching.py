"""RFC 6902 JSON Patch as checkpoints use it: apply an agent's patch safely, make deltas, summarise a change.

`jsonpatch` does the patching; this module adds what a server needs around it: a patch from a client is
checked op by op, `copy` cannot blow a small request up into gigabytes, and every failure is one exception
type with a reason a person can read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer

from memory_admin.codec import canonical_json, dumps

OPS = {"add", "remove", "replace", "move", "copy", "test"}
_NEEDS_VALUE = {"add", "replace", "test"}
_NEEDS_FROM = {"move", "copy"}


class PatchError(ValueError):
    """The patch is malformed or does not apply to the document."""


def check_ops(ops: Any) -> list[dict[str, Any]]:
    """The patch if every operation is well-formed; PatchError naming the first bad one otherwise."""
    if not isinstance(ops, list):
        raise PatchError("a patch is a list of operations")
    for index, op in enumerate(ops):
        if not isinstance(op, dict):
            raise PatchError(f"operation {index} is not an object")
        name = op.get("op")
        if name not in OPS:
            raise PatchError(f"operation {index} has no valid 'op' (one of {', '.join(sorted(OPS))})")
        if not isinstance(op.get("path"), str):
            raise PatchError(f"operation {index} needs a string 'path'")
        if name in _NEEDS_FROM and not isinstance(op.get("from"), str):
            raise PatchError(f"operation {index} ({name}) needs a string 'from'")
        if name in _NEEDS_VALUE and "value" not in op:
            raise PatchError(f"operation {index} ({name}) needs a 'value'")
    return ops


def apply_patch(document: dict[str, Any], ops: list[Any], *, max_bytes: int) -> dict[str, Any]:
    """Apply `ops` to `document` (which is changed in place) and return the result, which must be an object.

    `max_bytes` bounds what `copy` operations may add, so a patch cannot grow the state without limit.
    `ops` itself is left as it was: jsonpatch inserts operation values by reference, and a later operation
    editing an earlier one's value would otherwise change the patch that gets stored.
    """
    ops = json.loads(dumps(check_ops(ops)))
    try:
        if any(op["op"] == "copy" for op in ops):
            result: Any = document
            copied = 0
            for op in ops:
                if op["op"] == "copy":
                    copied += len(canonical_json(jsonpointer.resolve_pointer(result, op["from"])))
                    if copied > max_bytes:
                        raise PatchError(f"copy operations would grow the state past {max_bytes} bytes")
                result = jsonpatch.JsonPatch([op]).apply(result, in_place=True)
        else:
            result = jsonpatch.JsonPatch(ops).apply(document, in_place=True)
    except PatchError:
        raise
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise PatchError(f"the patch does not apply: {exc}") from None
    except (KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:
        raise PatchError(f"the patch does not apply ({type(exc).__name__})") from None
    if not isinstance(result, dict):
        raise PatchError("the patch would make the state something other than a JSON object")
    return result


def make_patch(source: Any, target: Any) -> list[dict[str, Any]]:
    """The RFC 6902 operations that turn `source` into `target`."""
    ops: list[dict[str, Any]] = jsonpatch.make_patch(source, target).patch
    return ops


def _escape(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


@dataclass
class Summary:
    """JSON Pointer paths that exist only in the target (added), only in the source (removed), or in both
    with different values (changed). Containers are descended into, so the paths are the smallest that
    differ. Each list stops at `limit` entries; `truncated` says when it did."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    truncated: bool = False


_MISSING = object()


def summarise(source: Any, target: Any, *, limit: int = 1000) -> Summary:
    """What differs between two documents, in document order (see `Summary`)."""
    summary = Summary()

    def note(bucket: list[str], path: str) -> None:
        if len(bucket) < limit:
            bucket.append(path)
        else:
            summary.truncated = True

    stack: list[tuple[str, Any, Any]] = [("", source, target)]
    while stack:
        path, old, new = stack.pop()
        if old is _MISSING:
            note(summary.added, path)
        elif new is _MISSING:
            note(summary.removed, path)
        elif isinstance(old, dict) and isinstance(new, dict):
            keys = list(old) + [key for key in new if key not in old]
            for key in reversed(keys):
                stack.append((f"{path}/{_escape(key)}", old.get(key, _MISSING), new.get(key, _MISSING)))
        elif isinstance(old, list) and isinstance(new, list):
            for index in range(max(len(old), len(new)) - 1, -1, -1):
                before = old[index] if index < len(old) else _MISSING
                after = new[index] if index < len(new) else _MISSING
                stack.append((f"{path}/{index}", before, after))
        elif type(old) is not type(new) or old != new:
            note(summary.changed, path)
    return summary
