"""The embedding column: pgvector's VectorField with a quicker way to write a vector as text."""

from __future__ import annotations

import math
from array import array
from functools import lru_cache
from typing import Any

from pgvector.django import VectorField


@lru_cache(maxsize=16)
def _template(dimensions: int) -> str:
    return "[" + ",".join(["%.9g"] * dimensions) + "]"


class EmbeddingField(VectorField):
    """Writes a list of numbers as pgvector text in one formatting call instead of one `str()` per component
    (a third of the CPU for a 384-dimension vector, which matters on batch writes).

    The column stores float4, so each component is first rounded to float4 (by `array("f")`, in C); nine
    significant digits then name that float4 exactly, so Postgres stores what pgvector's own path stores.
    Anything else, and a component beyond float4's range, takes pgvector's path and its errors.
    """

    def get_prep_value(self, value: Any) -> Any:
        if type(value) is list and value:
            try:
                rounded = array("f", value).tolist()
                finite = math.isfinite(math.fsum(rounded))
            except (TypeError, ValueError, OverflowError):
                finite = False
            if finite:
                return _template(len(rounded)) % tuple(rounded)
        return super().get_prep_value(value)
