"""The patch helpers the hot path relies on: applying a patch leaves the parent's state untouched and agrees
with jsonpatch; a generated delta rebuilds the exact target, JSON types included."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from checkpoints_app.patching import PatchError, apply_copying, delta
from memory_admin.codec import canonical_json

LIMIT = 1_000_000

DOCUMENT: dict[str, Any] = {
    "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
    "step": 2,
    "tools": {"search": {"hits": [1, 2, 3]}, "a/b": {"~x": True}},
}

PATCHES: list[list[dict[str, Any]]] = [
    [{"op": "add", "path": "/messages/-", "value": {"role": "user", "content": "more"}}],
    [{"op": "replace", "path": "/step", "value": 3}, {"op": "add", "path": "/messages/0", "value": {"r": 1}}],
    [{"op": "remove", "path": "/tools/search/hits/1"}, {"op": "add", "path": "/new", "value": [1, {"a": 2}]}],
    [{"op": "add", "path": "/new", "value": {"x": []}}, {"op": "add", "path": "/new/x/-", "value": 1}],
    [{"op": "replace", "path": "/tools/a~1b/~0x", "value": False}, {"op": "test", "path": "/step", "value": 2}],
    [{"op": "add", "path": "/messages/2", "value": "end"}, {"op": "remove", "path": "/tools"}],
    [{"op": "move", "from": "/step", "path": "/moved"}, {"op": "copy", "from": "/messages/0", "path": "/first"}],
]


@pytest.mark.parametrize("patch", PATCHES)
def test_applying_a_patch_leaves_the_parent_as_it_was_and_agrees_with_jsonpatch(patch: list[dict[str, Any]]) -> None:
    document = copy.deepcopy(DOCUMENT)
    sent = copy.deepcopy(patch)

    result = apply_copying(document, patch, max_bytes=LIMIT)

    assert document == DOCUMENT
    assert patch == sent
    assert result == jsonpatch.apply_patch(copy.deepcopy(DOCUMENT), copy.deepcopy(patch))


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/messages/2", "value": 1}],
        [{"op": "add", "path": "/messages/3", "value": 1}],
        [{"op": "add", "path": "/messages/01", "value": 1}],
        [{"op": "add", "path": "/step/x", "value": 1}],
        [{"op": "test", "path": "/step", "value": 3}],
        [{"op": "test", "path": "/tools/a~1b/~0x", "value": 1}],  # true is not 1 (RFC 6902, 4.6)
        [{"op": "test", "path": "/tools/search/hits", "value": [True, 2, 3]}],
        [{"op": "move", "from": "/step", "path": "/moved"}, {"op": "test", "path": "/tools/a~1b/~0x", "value": 1}],
        [{"op": "remove", "path": ""}],
        [{"op": "add", "path": "", "value": [1]}],
        [{"op": "add", "path": "step", "value": 1}],
    ],
)
def test_a_patch_that_does_not_apply_is_refused_and_changes_nothing(patch: list[dict[str, Any]]) -> None:
    document = copy.deepcopy(DOCUMENT)

    with pytest.raises(PatchError):
        apply_copying(document, patch, max_bytes=LIMIT)

    assert document == DOCUMENT


TARGETS: list[Any] = [
    {**DOCUMENT, "messages": [*DOCUMENT["messages"], {"role": "user", "content": "next"}], "step": 3},
    {"messages": DOCUMENT["messages"][:1], "step": 2.0, "tools": {}},
    {"messages": [], "step": True, "tools": {"search": {"hits": [1, 2, 3, 4]}, "a/b": {"~x": 1}}, "new": None},
    {"step": 1},
    {**DOCUMENT, "messages": [{"role": "user", "content": "changed"}, {"role": "assistant"}]},
    {**DOCUMENT, "step": -0.0},
]


@pytest.mark.parametrize("target", TARGETS)
def test_a_delta_rebuilds_exactly_the_target_json_types_included(target: Any) -> None:
    source = copy.deepcopy(DOCUMENT)

    ops = delta(source, target)
    rebuilt = apply_copying(source, ops, max_bytes=LIMIT)

    assert canonical_json(rebuilt) == canonical_json(target)
    assert source == DOCUMENT


def test_a_delta_between_zero_and_negative_zero_is_not_empty() -> None:
    # -0.0 == 0.0 in Python, but the two are written differently and the checksum covers what is written.
    rebuilt = apply_copying({"x": 0.0}, delta({"x": 0.0}, {"x": -0.0}), max_bytes=LIMIT)

    assert canonical_json(rebuilt) == canonical_json({"x": -0.0})
    assert (
        canonical_json(apply_copying({"x": [-0.0]}, delta({"x": [-0.0]}, {"x": [0.0]}), max_bytes=LIMIT))
        == b'{"x":[0.0]}'
    )


def test_a_test_operation_compares_numbers_by_value_and_nothing_else_loosely() -> None:
    document = {"n": 1, "f": 2.0, "list": [1, {"a": None}]}
    patch = [
        {"op": "test", "path": "/n", "value": 1.0},
        {"op": "test", "path": "/f", "value": 2},
        {"op": "test", "path": "/list", "value": [1.0, {"a": None}]},
    ]

    assert apply_copying(document, patch, max_bytes=LIMIT) == document
    with pytest.raises(PatchError):
        apply_copying(document, [{"op": "test", "path": "/list/1/a", "value": False}], max_bytes=LIMIT)


def test_a_stored_delta_is_replayed_without_judging_its_test_operations_again() -> None:
    # A delta stored while `test` still let true equal 1 must read back, not break the chain.
    ops = [{"op": "test", "path": "/flag", "value": 1}, {"op": "replace", "path": "/n", "value": 2}]

    assert apply_copying({"flag": True, "n": 1}, ops, max_bytes=LIMIT, tests=False) == {"flag": True, "n": 2}


def test_a_stored_delta_whose_pointer_holds_an_escape_other_than_tilde_0_or_1_still_replays() -> None:
    # Saves refuse such a pointer (check_pointers); one stored before they did must read back as it was saved.
    ops = [{"op": "add", "path": "/d/~2", "value": 1}]

    assert apply_copying({"d": {}}, ops, max_bytes=LIMIT, tests=False) == {"d": {"~2": 1}}


def test_appending_a_message_is_a_delta_of_one_operation() -> None:
    grown = {**DOCUMENT, "messages": [*DOCUMENT["messages"], {"role": "user", "content": "next"}]}

    assert delta(DOCUMENT, grown) == [
        {"op": "add", "path": "/messages/-", "value": {"role": "user", "content": "next"}}
    ]
