"""CPU time per process tree from /proc, so each scenario can say where the machine's cores went."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far, including reaped children)."""
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        # After the command: state ppid ... utime(14) stime(15) cutime(16) cstime(17), 1-based from pid.
        ppid = int(fields[1])
        ticks = sum(int(value) for value in fields[11:15])
        table[int(entry.name)] = (ppid, ticks / TICKS)
    return table


def cpu_by_tree(roots: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds used so far by each named root process and all its descendants."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    totals: dict[str, float] = {}
    for name, root in roots.items():
        if root is None or root not in table:
            continue
        seen, stack, total = set(), [root], 0.0
        while stack:
            pid = stack.pop()
            if pid in seen or pid not in table:
                continue
            seen.add(pid)
            total += table[pid][1]
            stack.extend(children.get(pid, []))
        totals[name] = total
    return totals


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / TICKS, total / TICKS


def children_of(pid: int) -> list[int]:
    return [child for child, (ppid, _) in _processes().items() if ppid == pid]
