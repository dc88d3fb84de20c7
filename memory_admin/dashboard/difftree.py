"""Two JSON documents as one tree for the checkpoint diff page: every path of either, marked by what happened.

Rows come in document order, each with its depth for indentation. A subtree that is the same on both sides,
added whole or removed whole is one row (its value shown compactly), so the tree stays as short as the change.
Values are the same when they are stored the same (`checkpoints_app.patching.same_document`), as the diff's
summary and patch take them: 1, 1.0 and true differ, and so do 0.0 and -0.0, which Python's == takes for equal.
A NaN (LangGraph's channel values may hold one) is the same as a NaN on the other side: for the page, unlike
for Python's floats, where NaN equals nothing, not even itself.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from checkpoints_app.patching import same_document

# A page this long is already hard to read; the RFC 6902 patch below it still lists every change.
MAX_ROWS = 2000
MAX_VALUE_CHARS = 300

_MISSING = object()


class _NaN:
    """Every NaN of the documents compared, as one value that equals itself (shown as JSON shows NaN)."""

    def __repr__(self) -> str:
        return "NaN"


SAME_NAN = _NaN()


def nan_as_equal(document: Any) -> Any:
    """`document` with each float NaN replaced by SAME_NAN, so that comparing two of them (here, or with
    checkpoints_app.patching.summarise) takes an unchanged NaN for unchanged. Containers are copied, the
    document is left as it is; no recursion, so any depth the decoders take is fine."""
    root = [document]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        value = container[key]
        if isinstance(value, float) and math.isnan(value):
            container[key] = SAME_NAN
        elif isinstance(value, dict):
            container[key] = mapping = dict(value)
            stack.extend((mapping, child) for child in mapping)
        elif isinstance(value, list):
            container[key] = items = list(value)
            stack.extend((items, index) for index in range(len(items)))
    return root[0]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_nan_for_json)


def _nan_for_json(value: Any) -> float:
    if value is SAME_NAN:
        return math.nan
    raise TypeError(f"{type(value).__name__} is not JSON")


@dataclass(frozen=True)
class TreeRow:
    path: str  # JSON Pointer
    key: str  # the last token of the path, as a person reads it
    depth: int
    # "added", "removed", "changed" (a leaf, or a value of another type), "inside" (a container with
    # changes below it), "same"
    status: str
    before: str  # compact JSON of the old value ("" when added or inside)
    after: str  # compact JSON of the new value ("" when removed or inside)


@dataclass(frozen=True)
class Tree:
    rows: list[TreeRow]
    truncated: bool


def _escape(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def _shown(value: Any) -> str:
    if value is _MISSING:
        return ""
    if isinstance(value, dict) and value:
        text = f"{{…}} {len(value)} keys"
    elif isinstance(value, list) and value:
        text = f"[…] {len(value)} items"
    else:
        text = _json(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _leaf(value: Any) -> str:
    """A value shown in full when it is small, else summarised (containers) or cut (long strings)."""
    text = _json(value)
    return text if len(text) <= MAX_VALUE_CHARS else _shown(value)


def _children(old: Any, new: Any) -> list[tuple[str | int, Any, Any]]:
    if isinstance(old, dict):
        keys = list(old) + [key for key in new if key not in old]
        return [(key, old.get(key, _MISSING), new.get(key, _MISSING)) for key in keys]
    length = max(len(old), len(new))
    return [
        (index, old[index] if index < len(old) else _MISSING, new[index] if index < len(new) else _MISSING)
        for index in range(length)
    ]


def diff_tree(source: dict[str, Any], target: dict[str, Any], *, max_rows: int = MAX_ROWS) -> Tree:
    """The rows of the merged tree of `source` and `target` (see module docstring)."""
    source, target = nan_as_equal(source), nan_as_equal(target)
    rows: list[TreeRow] = []
    stack: list[tuple[str, str, int, Any, Any]] = [
        (f"/{_escape(key)}", str(key), 0, old, new) for key, old, new in reversed(_children(source, target))
    ]
    while stack:
        if len(rows) >= max_rows:
            return Tree(rows=rows, truncated=True)
        path, key, depth, old, new = stack.pop()
        if old is _MISSING:
            rows.append(TreeRow(path, key, depth, "added", "", _leaf(new)))
        elif new is _MISSING:
            rows.append(TreeRow(path, key, depth, "removed", _leaf(old), ""))
        elif same_document(old, new):
            rows.append(TreeRow(path, key, depth, "same", _leaf(old), _leaf(new)))
        elif isinstance(old, (dict, list)) and type(old) is type(new):
            rows.append(TreeRow(path, key, depth, "inside", "", ""))
            for child_key, child_old, child_new in reversed(_children(old, new)):
                stack.append((f"{path}/{_escape(child_key)}", str(child_key), depth + 1, child_old, child_new))
        else:
            rows.append(TreeRow(path, key, depth, "changed", _leaf(old), _leaf(new)))
    return Tree(rows=rows, truncated=False)
