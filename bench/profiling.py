"""Optional sampling profiles of the web workers with py-spy (`python -m bench --profile`).

py-spy samples the workers from outside (no code change, small overhead) and writes collapsed stacks; this
module folds them into the functions that hold the most samples, inclusive and self.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from memory_admin.runner import BIN

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_SHORTEN = re.compile(r"^.*?/(site-packages|lib/python3\.\d+)/")


def py_spy() -> str | None:
    candidate = BIN / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def start(pid: int, output: Path, seconds: float, rate: int = 200) -> subprocess.Popen[bytes] | None:
    binary = py_spy()
    if binary is None:
        return None
    return subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--nonblocking",
            # Only threads holding the GIL: CPU spent in Python, not threads waiting on sockets or the GIL.
            "--gil",
            "--rate",
            str(rate),
            "--duration",
            str(max(1, int(seconds))),
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _label(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = _SHORTEN.sub("", match["file"])
    root = str(Path(__file__).resolve().parent.parent) + "/"
    path = path.removeprefix(root)
    return f"{match['function']} ({path})"


def summarize(collapsed: Path, top: int = 30) -> dict[str, Any]:
    """Functions by inclusive and self share of the samples, and the application's own frames."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_label(frame) for frame in stack.split(";") if not frame.startswith("process ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for label in set(frames):
            inclusive[label] += count
    app_prefixes = ("memory_admin/", "sessions_app/", "tenants_app/", "checkpoints_app/", "memories_app/")

    def share(counter: Counter[str], keep: Any = None) -> list[tuple[str, float]]:
        rows = [(label, count / total * 100) for label, count in counter.most_common() if keep is None or keep(label)]
        return [(label, round(percent, 1)) for label, percent in rows[:top]]

    return {
        "samples": total,
        "inclusive_percent": share(inclusive),
        "self_percent": share(own),
        "application_inclusive_percent": share(
            inclusive, lambda label: any(f"({prefix}" in label for prefix in app_prefixes)
        ),
    }
