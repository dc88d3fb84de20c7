"""The benchmark suites `make bench` runs, in order: name -> "module:callable".

A suite is a callable taking the running `bench.cli.Bench` (environment, API key, `with_server`, `load`) and
returning its `bench.figures.Figure`s. Each suite lives in its own module; add one line here to register it.
`python -m bench api checkpoints` runs only those suites; the figures of the others stay in latest.json.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.figures import Figure

SUITES: dict[str, str] = {
    "api": "bench.cli:Bench.api_suite",
    "checkpoints": "bench.checkpoints_bench:checkpoints_suite",
    "memories": "bench.memories_bench:memories_suite",
    "dashboard": "bench.dashboard_bench:dashboard_suite",
    "lifecycle": "bench.lifecycle:suite",
    "langgraph": "bench.langgraph_bench:langgraph_suite",
    "erasure": "bench.erasure:suite",
}


def resolve(name: str) -> Callable[[Any], list[Figure]]:
    module_name, _, attribute = SUITES[name].partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]
