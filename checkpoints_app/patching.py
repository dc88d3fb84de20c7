"""RFC 6902 JSON Patch as checkpoints use it: apply an agent's patch safely, make deltas, summarise a change.

`jsonpatch` does the patching; this module adds what a server needs around it: a patch from a client is
checked op by op, `copy` cannot blow a small request up into gigabytes, and every failure is one exception
type with a reason a person can read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer

from memory_admin.api.parsers import MAX_JSON_DEPTH, check_json_value
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
        if not isinstance(name, str) or name not in OPS:
            raise PatchError(f"operation {index} has no valid 'op' (one of {', '.join(sorted(OPS))})")
        if not isinstance(op.get("path"), str):
            raise PatchError(f"operation {index} needs a string 'path'")
        if name in _NEEDS_FROM and not isinstance(op.get("from"), str):
            raise PatchError(f"operation {index} ({name}) needs a string 'from'")
        if name in _NEEDS_VALUE and "value" not in op:
            raise PatchError(f"operation {index} ({name}) needs a 'value'")
    return ops


# RFC 6901: in a JSON Pointer, "~" starts an escape, and only "~0" ("~") and "~1" ("/") exist.
_BAD_ESCAPE = re.compile(r"~(?![01])")


def check_pointers(ops: list[Any]) -> None:
    """PatchError naming the first `path` or `from` of `ops` with a "~" escape RFC 6901 does not have.

    A client's patch is checked so before it is applied. A stored delta is not: it was judged when it was
    saved, and before this check a patch of add/remove/replace/test ops could store a key such as "~2".
    """
    for index, op in enumerate(ops):
        for member in ("path", "from"):
            pointer = op.get(member) if isinstance(op, dict) else None
            if isinstance(pointer, str) and (bad := _BAD_ESCAPE.search(pointer)):
                escape = pointer[bad.start() : bad.start() + 2]
                raise PatchError(
                    f"operation {index}'s {member} {pointer!r} holds {escape!r}: a JSON Pointer escapes only ~0 and ~1"
                )


@dataclass
class CopyBudget:
    """What `copy` operations may still add, shared by the patches applied with it in turn (one request's)."""

    limit: int
    spent: int = 0

    def spend(self, size: int) -> None:
        self.spent += size
        if self.spent > self.limit:
            raise PatchError(f"copy operations would grow the state past {self.limit} bytes")


def _which(index: int, op: dict[str, Any]) -> str:
    """Operation `index` as an error names it: its op and pointers (the client's own, shortened), never the
    values it meets in the document, which are the person's data."""
    where = f"{op['op']} {_shown(op['path'])}"
    if op["op"] in _NEEDS_FROM:
        where += f" from {_shown(op['from'])}"
    return f"operation {index} ({where})"


def _shown(pointer: str) -> str:
    return repr(pointer if len(pointer) <= 100 else pointer[:100] + "…")


def _why(op: dict[str, Any]) -> str:
    if op["op"] == "move" and op["path"].startswith(op["from"] + "/"):
        return "it moves a value into itself"
    return "a location it names is missing, out of range or inside a value that is not a container"


def apply_patch(
    document: dict[str, Any], ops: list[Any], *, max_bytes: int | CopyBudget, tests: bool = True
) -> dict[str, Any]:
    """Apply `ops` to `document` (which is changed in place) and return the result, which must be an object.

    `max_bytes` bounds what `copy` operations may add, so a patch cannot grow the state without limit (a
    CopyBudget: what is left of a bound several patches share).
    `tests=False` passes over `test` operations: a stored delta's were judged when it was saved.
    `ops` itself is left as it was: jsonpatch inserts operation values by reference, and a later operation
    editing an earlier one's value would otherwise change the patch that gets stored.
    A PatchError names the operation that failed by its index, op and pointers: not by jsonpatch's message,
    which quotes the whole document it failed on.
    """
    ops = json.loads(dumps(check_ops(ops)))
    budget = max_bytes if isinstance(max_bytes, CopyBudget) else CopyBudget(max_bytes)
    result: Any = document
    for index, op in enumerate(ops):
        try:
            if op["op"] == "test":
                if tests:
                    _test(jsonpointer.resolve_pointer(result, op["path"]), op["value"])
                continue
            if op["op"] == "copy":
                budget.spend(len(canonical_json(jsonpointer.resolve_pointer(result, op["from"]))))
            # One operation at a time, so that a failure names it (and faster than a JsonPatch per op).
            result = jsonpatch.JsonPatch.operations[op["op"]](op).apply(result)
        except PatchError as exc:
            raise PatchError(f"{_which(index, op)} does not apply: {exc}") from None
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException):
            raise PatchError(f"{_which(index, op)} does not apply: {_why(op)}") from None
        except (KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:
            raise PatchError(f"{_which(index, op)} does not apply ({type(exc).__name__})") from None
    if not isinstance(result, dict):
        raise PatchError("the patch would make the state something other than a JSON object")
    return result


_SIMPLE_OPS = {"add", "remove", "replace", "test"}


def _token(token: str) -> str:
    # Any other "~" is kept as it is: a client's patch has none (`check_pointers`), a stored delta may.
    return token.replace("~1", "/").replace("~0", "~")


def _index(part: str, size: int, *, append: bool) -> int:
    """A JSON Pointer array index (no sign, no leading zero) within [0, size) — or up to size when adding."""
    if append and part == "-":
        return size
    if not part.isdigit() or (len(part) > 1 and part[0] == "0") or not part.isascii():
        raise PatchError(f"{part!r} is not an array index")
    index = int(part)
    if index > size or (index == size and not append):
        raise PatchError(f"index {index} is out of range")
    return index


def _apply_copying_one(document: Any, op: dict[str, Any]) -> Any:
    """`document` after one add/remove/replace/test, copying only the containers along the op's path."""
    name, path = op["op"], op["path"]
    if path == "":
        if name == "test":
            _test(document, op["value"])
            return document
        if name == "remove":
            raise PatchError("the whole document cannot be removed")
        return op["value"]
    if not path.startswith("/"):
        raise PatchError(f"{path!r} is not a JSON Pointer")
    tokens = [_token(token) for token in path[1:].split("/")]
    root: Any = _copied(document) if name != "test" else document
    parent = root
    for token in tokens[:-1]:
        if isinstance(parent, dict):
            if token not in parent:
                raise PatchError(f"{path!r} does not exist")
            key: Any = token
        elif isinstance(parent, list):
            key = _index(token, len(parent), append=False)
        else:
            raise PatchError(f"{path!r} goes through a value that is not a container")
        if name != "test":
            parent[key] = _copied(parent[key])
        parent = parent[key]
    last = tokens[-1]
    if isinstance(parent, dict):
        exists = last in parent
        if name == "add":
            parent[last] = op["value"]
        elif not exists:
            raise PatchError(f"{path!r} does not exist")
        elif name == "remove":
            del parent[last]
        elif name == "replace":
            parent[last] = op["value"]
        else:
            _test(parent[last], op["value"])
    elif isinstance(parent, list):
        index = _index(last, len(parent), append=name == "add")
        if name == "add":
            parent.insert(index, op["value"])
        elif name == "remove":
            del parent[index]
        elif name == "replace":
            parent[index] = op["value"]
        else:
            _test(parent[index], op["value"])
    else:
        raise PatchError(f"{path!r} goes through a value that is not a container")
    return root


def _test(actual: Any, expected: Any) -> None:
    if not json_equal(actual, expected):
        raise PatchError("a test operation failed")


def json_equal(first: Any, second: Any) -> bool:
    """Equality as RFC 6902's `test` defines it: numbers by value (1 equals 1.0), but `true` is not 1 and
    `false` is not 0, as Python's == would have it; arrays item by item, objects member by member."""
    if type(first) is bool or type(second) is bool or first is None or second is None:
        return first is second
    if isinstance(first, int | float) and isinstance(second, int | float):
        return first == second
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(json_equal(value, second[key]) for key, value in first.items())
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(json_equal(a, b) for a, b in zip(first, second, strict=True))
    return type(first) is type(second) and first == second


def same_value(first: Any, second: Any) -> bool:
    """Whether two JSON scalars are stored the same: the same type and value, and for floats the same sign
    (-0.0 == 0.0 in Python, but they are written differently, so a checksum tells them apart)."""
    if type(first) is not type(second) or first != second:
        return False
    return type(first) is not float or math.copysign(1.0, first) == math.copysign(1.0, second)


def same_document(first: Any, second: Any) -> bool:
    """Whether two JSON documents are stored the same: objects with the same members, arrays with the same
    items, and every scalar the same by `same_value` (so 1, 1.0 and true differ, and 0.0 and -0.0 do, where
    Python's == takes them for equal). No recursion, so any depth the decoders take is fine."""
    stack: list[tuple[Any, Any]] = [(first, second)]
    while stack:
        old, new = stack.pop()
        if isinstance(old, dict) and isinstance(new, dict):
            if old.keys() != new.keys():
                return False
            stack.extend((value, new[key]) for key, value in old.items())
        elif isinstance(old, list) and isinstance(new, list):
            if len(old) != len(new):
                return False
            stack.extend(zip(old, new, strict=True))
        elif not same_value(old, new):
            return False
    return True


def check_patched(result: dict[str, Any], ops: list[Any], *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Hold a patched document to the request parser's rules (depth, strings): all of it when the patch moved or
    copied something or replaced the whole, else only the values the patch brings in, at the depth they land at
    (the rest was checked when it was stored). `max_depth` is the deepest the document may be, counted from its
    root. ParseError when one is broken."""
    if any(op["op"] in ("move", "copy") or op["path"] == "" for op in ops):
        check_json_value(result, max_depth=max_depth)
        return
    for op in ops:
        if "value" in op and op["op"] != "test":
            check_json_value(op["value"], max_depth=max_depth - op["path"].count("/"))


def _copied(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


def apply_copying(document: dict[str, Any], ops: list[Any], *, max_bytes: int, tests: bool = True) -> dict[str, Any]:
    """Like `apply_patch`, but `document` is left unchanged: only the containers an operation goes
    through are copied (shallowly), so a cached state can be patched without copying all of it.

    The result shares unchanged parts with `document` and values with `ops`; neither may be changed later.
    Patches with `move` or `copy` operations are applied to a full copy by `apply_patch`.
    """
    check_ops(ops)
    if any(op["op"] not in _SIMPLE_OPS for op in ops):
        return apply_patch(json.loads(dumps(document)), ops, max_bytes=max_bytes, tests=tests)
    result: Any = document
    for index, op in enumerate(ops):
        if not tests and op["op"] == "test":
            continue
        try:
            result = _apply_copying_one(result, op)
        except (KeyError, IndexError, TypeError, RecursionError) as exc:
            raise PatchError(f"{_which(index, op)} does not apply ({type(exc).__name__})") from None
        except PatchError as exc:
            raise PatchError(f"{_which(index, op)} does not apply: {exc}") from None
    if not isinstance(result, dict):
        raise PatchError("the patch would make the state something other than a JSON object")
    return result


def delta(source: Any, target: Any) -> list[dict[str, Any]]:
    """RFC 6902 operations that turn `source` into `target`, found in one pass (for storage, not display).

    Objects are compared key by key; lists position by position, with the longer one's tail added or
    removed (appending to a list — the usual growth of an agent's state — is one `add` per new item);
    anything else that differs, or whose JSON type differs (1 and 1.0, 1 and true, 0.0 and -0.0), is replaced.
    """
    ops: list[dict[str, Any]] = []
    _delta(source, target, "", ops)
    return ops


def _delta(source: Any, target: Any, path: str, ops: list[dict[str, Any]]) -> None:
    if source is target:
        return
    if type(source) is dict and type(target) is dict:
        for key in source:
            if key not in target:
                ops.append({"op": "remove", "path": f"{path}/{_escape(key)}"})
        for key, value in target.items():
            if key in source:
                _delta(source[key], value, f"{path}/{_escape(key)}", ops)
            else:
                ops.append({"op": "add", "path": f"{path}/{_escape(key)}", "value": value})
        return
    if type(source) is list and type(target) is list:
        common = min(len(source), len(target))
        for index in range(common):
            _delta(source[index], target[index], f"{path}/{index}", ops)
        for index in range(len(source) - 1, common - 1, -1):
            ops.append({"op": "remove", "path": f"{path}/{index}"})
        for value in target[common:]:
            ops.append({"op": "add", "path": f"{path}/-", "value": value})
        return
    if not same_value(source, target):
        ops.append({"op": "replace", "path": path, "value": target})


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
        elif not same_value(old, new):
            note(summary.changed, path)
    return summary
