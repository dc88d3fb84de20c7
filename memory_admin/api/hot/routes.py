"""Every app's hot routes, in the order they are tried (as memory_admin/api/urls.py lists every app's URLs)."""

from __future__ import annotations

from memory_admin.api.hot.lane import HotRoute


def hot_routes() -> list[HotRoute]:
    from checkpoints_app.api.hot import ROUTES as CHECKPOINT_ROUTES
    from langgraph_app.api.hot import ROUTES as LANGGRAPH_ROUTES
    from sessions_app.api.hot import ROUTES as SESSION_ROUTES

    return [*SESSION_ROUTES, *CHECKPOINT_ROUTES, *LANGGRAPH_ROUTES]
