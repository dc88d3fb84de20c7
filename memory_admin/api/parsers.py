"""A JSON parser that turns every malformed body into a clean 400 before any view sees it."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from memory_admin.codec import HUGE_FLOAT

# Deeper documents than this are refused: nothing an agent stores needs it, and deep nesting is a classic
# way to make servers burn CPU or overflow the stack.
MAX_JSON_DEPTH = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"the number {text[:40]} is too large")
    return number


def _check_text(text: str, what: str) -> None:
    if "\x00" in text:
        raise ParseError(f"{what} may not contain the NUL character (\\u0000).")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ParseError(f"{what} may not contain unpaired surrogates (such as \\ud800).") from None


_NOTHING_TO_CHECK = {int, bool, type(None)}  # (a float is checked for its size)
_NUMBERS = {int, float}


def _walk(value: Any, *, max_depth: int, check_strings: bool) -> bool:
    """check_json_value's walk; also says whether the document holds a float of magnitude 2**63 or more.

    A list of plain numbers, such as an embedding, is passed over in one step of built-ins.
    """
    huge = False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is float:
            huge = huge or abs(item) >= HUGE_FLOAT
        elif kind is str:
            if check_strings:
                _check_text(item, "Strings")
        elif kind is dict:
            if depth > max_depth:
                raise ParseError(f"JSON is nested deeper than {max_depth} levels.")
            for key, child in item.items():
                if check_strings:
                    _check_text(key, "Keys")
                if type(child) not in _NOTHING_TO_CHECK:
                    stack.append((child, depth + 1))
        elif kind is list:
            if depth > max_depth:
                raise ParseError(f"JSON is nested deeper than {max_depth} levels.")
            kinds = set(map(type, item))
            if kinds <= _NUMBERS:
                huge = huge or (float in kinds and max(map(abs, item)) >= HUGE_FLOAT)
            else:
                stack.extend((child, depth + 1) for child in item if type(child) not in _NOTHING_TO_CHECK)
    return huge


def check_json_value(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ParseError for nesting deeper than `max_depth`, or a string PostgreSQL cannot store.

    PostgreSQL cannot store U+0000 or an unpaired surrogate in text or JSONB, so they are refused here rather
    than failing on INSERT.
    """
    _walk(value, max_depth=max_depth, check_strings=True)


def _parse_slowly(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ParseError(f"JSON is nested deeper than {MAX_JSON_DEPTH} levels.") from None
    except ValueError as exc:
        raise ParseError(f"Malformed JSON: {exc}") from None


def parse_json_text(text: str) -> Any:
    """A JSON document given as text (in a query parameter), held to the rules of a request body: no NaN or
    Infinity, no out-of-range number, no NUL or unpaired surrogate, bounded depth. ParseError otherwise."""
    value = _parse_slowly(text)
    check_json_value(value)
    return value


NOT_PLAIN = object()


def parse_plainly(raw: bytes) -> Any:
    """The document when orjson reads it and nothing in it needs a closer look; NOT_PLAIN otherwise.

    Valid JSON holds U+0000 only as the escape \\u0000 (orjson refuses a raw control character and an unpaired
    surrogate), so strings need looking at only when the body has that escape. A float of 2**63 or more may
    be an integer orjson rounded, and too deep a document is refused: those are not plain either.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return NOT_PLAIN
    try:
        if _walk(data, max_depth=MAX_JSON_DEPTH, check_strings=b"\\u0000" in raw):
            return NOT_PLAIN
    except ParseError:
        return NOT_PLAIN
    return data


class StrictJSONParser(JSONParser):
    """UTF-8 JSON only; no NaN/Infinity, no NUL characters, no unpaired surrogates, bounded depth.

    orjson parses (it refuses NaN, Infinity, numbers beyond a double, unpaired surrogates and invalid UTF-8
    itself, several times faster than the json module on an embedding). A document it refuses is parsed
    again by the json module, which says precisely what is wrong, or accepts what orjson cannot represent
    (an integer beyond 64 bits, which orjson rounds to a float: a document with a float of that size is
    parsed again, exactly).
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        if not raw.strip():
            raise ParseError("The request body is empty; send a JSON document.")
        data = parse_plainly(raw)
        if data is not NOT_PLAIN:
            return data
        # Parsed again by the json module, which says precisely what is wrong (or reads a huge integer exactly).
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("The request body is not valid UTF-8.") from None
        data = _parse_slowly(text)
        check_json_value(data)
        return data
