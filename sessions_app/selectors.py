"""Reads of sessions and event streams, always within the caller's tenant."""

from __future__ import annotations

from django.db.models import QuerySet

from memory_admin.errors import NotFound
from sessions_app.models import AgentSession
from tenants_app.models import Tenant


def sessions_for(tenant: Tenant) -> QuerySet[AgentSession]:
    return AgentSession.objects.filter(tenant=tenant)


def get_session(*, tenant: Tenant, session_id: str) -> AgentSession:
    """The tenant's session with this id; NotFound (404) for an unknown id or another tenant's session."""
    session = sessions_for(tenant).filter(session_id=session_id).first()
    if session is None:
        raise NotFound("No such session.", details={"session_id": session_id})
    return session
