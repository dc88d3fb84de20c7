"""One benchmark figure, whether it meets its target, and the table they print as."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Figure:
    name: str
    unit: str
    value: float | None
    anchor: str | None = None
    anchor_value: float | None = None
    target: str = ""
    meets: bool | None = None

    def as_json(self) -> dict[str, Any]:
        ratio = None
        if self.value is not None and self.anchor_value:
            ratio = round(self.value / self.anchor_value, 3)
        return {
            "name": self.name,
            "unit": self.unit,
            "value": None if self.value is None else round(self.value, 3),
            "anchor": self.anchor,
            "anchor_value": None if self.anchor_value is None else round(self.anchor_value, 3),
            "ratio": ratio,
        }


def _percent(value: float | None) -> float | None:
    return None if value is None else value * 100


def _meets(figure: Figure) -> bool | None:
    if not figure.target or figure.value is None:
        return None
    operator, _, bound = figure.target.partition(" ")
    return figure.value <= float(bound) if operator == "<=" else figure.value >= float(bound)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "unit", "anchor", "anchor value", "ratio", "target", "")]
    for figure in figures:
        data = figure.as_json()
        verdict = {True: "ok", False: "MISS", None: ""}[figure.meets]
        rows.append(
            (
                figure.name,
                _fmt(figure.value),
                figure.unit,
                figure.anchor or "",
                _fmt(figure.anchor_value),
                "" if data["ratio"] is None else f"{data['ratio']:.2f}x",
                figure.target,
                verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i in (0, 2, 3, 6) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)
