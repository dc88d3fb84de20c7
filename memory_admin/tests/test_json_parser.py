"""The API's JSON parser: orjson on the common path, the json module for what orjson refuses or would round."""

from __future__ import annotations

import io
import json

import pytest
from rest_framework.exceptions import ParseError

from memory_admin.api.parsers import StrictJSONParser


def parse(raw: bytes) -> object:
    return StrictJSONParser().parse(io.BytesIO(raw))


def test_integers_beyond_64_bits_come_back_exactly_as_sent():
    big = 10**32 + 7
    assert parse(json.dumps({"n": big, "m": -(2**70)}).encode()) == {"n": big, "m": -(2**70)}


def test_an_embedding_and_nested_documents_parse_to_the_same_values_as_the_json_module():
    document = {"embedding": [0.1 * n - 3 for n in range(384)], "a": [{"b": ["c", 1, None, True]}], "t": "é😀"}
    raw = json.dumps(document, ensure_ascii=False).encode()
    assert parse(raw) == json.loads(raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b'{"a": 1e999}', "too large"),
        (b'{"a": "x\\u0000y"}', "NUL"),
        (b'{"x\\u0000": 1}', "NUL"),
        (b'{"a": "\\ud800"}', "unpaired surrogates"),
        (b'{"a": 1} trailing', "Malformed JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[" * 65 + b"]" * 65, "nested deeper than 64"),
        (b"[" * 5000 + b"]" * 5000, "nested deeper than 64"),
    ],
)
def test_malformed_documents_are_refused_with_the_reason(raw, reason):
    with pytest.raises(ParseError) as refused:
        parse(raw)
    assert reason in str(refused.value.detail)


def test_a_document_exactly_at_the_depth_limit_is_accepted():
    assert parse(b"[" * 64 + b"]" * 64) is not None


def test_a_large_float_is_kept_as_a_float():
    assert parse(b'{"a": 1e300, "b": [-1.5e19, 2]}') == {"a": 1e300, "b": [-1.5e19, 2]}
