"""A Celery app for tests of the worker's logging: the service's app plus a task that returns and raises
texts standing for personal data. Started as `celery -A memory_admin.tests.celery_probe worker`."""

from __future__ import annotations

from memory_admin.celery import app

__all__ = ["app", "probe"]

PERSONAL = "alice@example.com is pregnant"


@app.task(name="tests.probe")
def probe(text: str) -> dict[str, str]:
    if text == "fail":
        raise ValueError(f"duplicate key: Key (user_id)=({PERSONAL}) already exists")
    return {"echo": text}
