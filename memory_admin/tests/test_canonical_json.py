"""canonical_json is the input of every checkpoint checksum: its bytes must be the json module's, exactly, for
every document, whichever way it computes them."""

from __future__ import annotations

import datetime
import enum
import json
import random
import struct
from typing import Any

import pytest

from memory_admin.codec import canonical_json, dumps, loads


def _reference(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _text(rng: random.Random) -> str:
    ranges = [(0, 0x80), (0x80, 0x800), (0x800, 0xD800), (0xE000, 0x10000), (0x10000, 0x110000)]
    low, high = rng.choice(ranges)
    return "".join(chr(rng.randrange(low, high)) for _ in range(rng.randrange(0, 6)))


def _number(rng: random.Random) -> Any:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randrange(-(2**63), 2**64)
    if kind == 1:
        return rng.randrange(-(2**200), 2**200)  # beyond 64 bits
    if kind == 2:
        bits = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        return bits if bits == bits and abs(bits) != float("inf") else 0.5
    if kind == 3:
        return rng.choice([1e-7, 1e16, 1e22, -0.0, 0.1, 5e-324, 123.0])
    return rng.choice([True, False, None])


def _document(rng: random.Random, depth: int = 0) -> Any:
    if depth > 3 or rng.random() < 0.3:
        return _text(rng) if rng.random() < 0.5 else _number(rng)
    if rng.random() < 0.5:
        return [_document(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {_text(rng): _document(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


@pytest.mark.parametrize("seed", range(20))
def test_random_documents_are_written_exactly_as_the_json_module_writes_them(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        document = _document(rng)
        assert canonical_json(document) == _reference(document), document


@pytest.mark.parametrize(
    "document",
    [
        {"messages": [{"role": "user", "content": "Python 3.11 costs 1e3 dollars"}], "step": 3},
        {"score": 1e-07, "big": 10**30, "small": -(2**63)},
        {"ctrl": "\x00\x1f\x7f\u2028\u2029\ufeff", "emoji": "\U0001f600", "quote": '"\\'},
        {"b": 1, "a": {"d": [], "c": {}}, "é": 2, "z": None, "": True},
        {"deep": [[{"x": [1, 2, {"y": [3, 1e16]}]}]], "text": "1.5e-7 in words"},
        {"tuple": (1, (2, 2.5e-9)), "flag": True},
    ],
)
def test_documents_with_floats_lookalikes_escapes_and_big_integers_match(document: Any) -> None:
    assert canonical_json(document) == _reference(document)


class _Ratio(float):
    pass


class _Level(enum.IntEnum):
    HIGH = 3


class _Name(str):
    pass


@pytest.mark.parametrize(
    "document",
    [{"ratio": _Ratio(0.25)}, {"level": _Level.HIGH}, {"name": _Name("ada"), _Name("key"): [1, (2, 3.5)]}],
)
def test_subclasses_of_json_types_are_written_as_the_json_module_writes_them(document: Any) -> None:
    assert canonical_json(document) == _reference(document)


def test_a_value_the_json_module_refuses_is_refused_though_orjson_could_write_it() -> None:
    with pytest.raises(TypeError):
        canonical_json({"at": datetime.datetime(2026, 12, 7, 0, 0, 0, 123)})


@pytest.mark.parametrize("seed", range(5))
def test_random_documents_are_read_back_exactly_as_the_json_module_reads_them(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        text = dumps(_document(rng))
        assert repr(loads(text)) == repr(json.loads(text)), text  # repr: 1 and 1.0, 0.0 and -0.0 differ
