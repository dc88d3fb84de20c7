"""Template context shared by every dashboard page: the navigation the user's roles allow."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from tenants_app.roles import Role, roles_of

# (label, url name, role needed); None means any staff role.
NAVIGATION: list[tuple[str, str, Role | None]] = [
    ("Overview", "dashboard:overview", None),
    ("Sessions", "dashboard:sessions", None),
    ("Users", "dashboard:users", None),
    ("Forget-me", "dashboard:erasures", Role.COMPLIANCE),
    ("API keys", "dashboard:api-keys", Role.ADMIN),
    ("Tenants", "dashboard:tenants", Role.ADMIN),
    ("Lifecycle", "dashboard:lifecycle", Role.ADMIN),
]


def navigation(request: HttpRequest) -> dict[str, Any]:
    roles = roles_of(getattr(request, "user", None))
    return {
        "nav_items": [(label, name) for label, name, role in NAVIGATION if roles and (role is None or role in roles)],
        "user_roles": sorted(role.value for role in roles),
        "websocket_url": settings.WEBSOCKET_URL,
    }
