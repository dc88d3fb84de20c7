"""Two JSON documents as one tree for the checkpoint diff page: every path of either, marked by what happened.

Rows come in document order, each with its depth for indentation. A subtree that is the same on both sides,
added whole or removed whole is one row (its value shown compactly), so the tree stays as short as the change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# A page this long is already hard to read; the RFC 6902 patch below it still lists every change.
MAX_ROWS = 2000
MAX_VALUE_CHARS = 300

_MISSING = object()


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
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _leaf(value: Any) -> str:
    """A value shown in full when it is small, else summarised (containers) or cut (long strings)."""
    text = json.dumps(value, ensure_ascii=False)
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
        elif type(old) is type(new) and old == new:
            rows.append(TreeRow(path, key, depth, "same", _leaf(old), _leaf(new)))
        elif isinstance(old, (dict, list)) and type(old) is type(new):
            rows.append(TreeRow(path, key, depth, "inside", "", ""))
            for child_key, child_old, child_new in reversed(_children(old, new)):
                stack.append((f"{path}/{_escape(child_key)}", str(child_key), depth + 1, child_old, child_new))
        else:
            rows.append(TreeRow(path, key, depth, "changed", _leaf(old), _leaf(new)))
    return Tree(rows=rows, truncated=False)
