"""A JSON parser that turns every malformed body into a clean 400 before any view sees it."""

from __future__ import annotations

import json
import math
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

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


def check_json_value(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ParseError for nesting deeper than `max_depth`, or a string PostgreSQL cannot store.

    PostgreSQL cannot store U+0000 or an unpaired surrogate in text or JSONB, so they are refused here rather
    than failing on INSERT.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, "Strings")
        elif isinstance(item, dict):
            if depth > max_depth:
                raise ParseError(f"JSON is nested deeper than {max_depth} levels.")
            for key, child in item.items():
                _check_text(key, "Keys")
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                raise ParseError(f"JSON is nested deeper than {max_depth} levels.")
            stack.extend((child, depth + 1) for child in item)


class StrictJSONParser(JSONParser):
    """UTF-8 JSON only; no NaN/Infinity, no NUL characters, bounded depth."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        if not raw.strip():
            raise ParseError("The request body is empty; send a JSON document.")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("The request body is not valid UTF-8.") from None
        try:
            data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        except RecursionError:
            raise ParseError(f"JSON is nested deeper than {MAX_JSON_DEPTH} levels.") from None
        except ValueError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None
        check_json_value(data)
        return data
