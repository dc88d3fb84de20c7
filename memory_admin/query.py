"""Query-string values read the same way by the API and the dashboard."""

from __future__ import annotations

# A bigint has at most 19 digits; every number of 18 digits fits.
MAX_DIGITS = 18


def whole_number(raw: str | None) -> int | None:
    """`raw` as a non-negative integer when it is 1 to MAX_DIGITS ASCII digits, else None.

    Not `str.isdigit()` alone: that also accepts "²" (which int() refuses) and "\uff13", a full-width 3
    (which int() reads as 3).
    """
    if raw is None or not 0 < len(raw) <= MAX_DIGITS or not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)
