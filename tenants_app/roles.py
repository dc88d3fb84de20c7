"""Staff roles. Support reads everything; compliance also files, approves and downloads erasure and export
requests; admin manages tenants, API keys and retention settings. Roles are Django groups, so they can be
granted in the Django admin; a superuser holds every role."""

from __future__ import annotations

import enum
from typing import Any


class Role(enum.StrEnum):
    SUPPORT = "support"
    COMPLIANCE = "compliance"
    ADMIN = "admin"


def roles_of(user: Any) -> frozenset[Role]:
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return frozenset()
    if user.is_superuser:
        return frozenset(Role)
    if not hasattr(user, "groups"):  # an agent's API key (tenants_app.authentication.AgentPrincipal): no staff
        return frozenset()
    cached: frozenset[Role] | None = getattr(user, "_memory_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = frozenset(role for role in Role if role.value in names)
        user._memory_roles = cached
    return cached


def has_role(user: Any, role: Role) -> bool:
    return role in roles_of(user)


def is_staff_member(user: Any) -> bool:
    """May open the dashboard at all (any role)."""
    return bool(roles_of(user))
