"""Recall: what an agent puts in its prompt for one turn, in one read.

Parts, by priority: the session's hot context (its latest messages), then the session's own memories,
then the user's memories, then the tenant's global knowledge. Each part has its own limit; a memory whose
text already appears in a higher-priority part is left out of the lower ones. With a query (or, without
one, the latest user message of the context) memories are ranked by similarity; otherwise newest first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from memories_app.embeddings import get_embedder
from memories_app.models import Scope
from memories_app.selectors import (
    ScoredMemory,
    SearchScope,
    memories_for,
    recent_memories,
    search_memories,
    session_messages,
)
from memories_app.services import embed_texts
from sessions_app.models import AgentSession

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class RecallLimits:
    context: int = 20
    session: int = 5
    user: int = 5
    global_: int = 3


@dataclass(frozen=True)
class Recall:
    query: str
    context: list[dict[str, Any]]
    session: list[ScoredMemory]
    user: list[ScoredMemory]
    global_: list[ScoredMemory]


def _last_user_message(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _key(text: str) -> str:
    return _SPACE.sub(" ", text.strip().lower())


def recall(*, session: AgentSession, query: str, limits: RecallLimits, min_score: float) -> Recall:
    """The merged recall for a session (see the module docstring). Unavailable (503) if the embedder is down
    and there is something to rank."""
    messages = session_messages(session)
    context = messages[-limits.context :] if limits.context else []
    query = query or _last_user_message(messages)
    tenant = session.tenant
    parts: dict[str, list[ScoredMemory]] = {}
    wanted = {Scope.SESSION: limits.session, Scope.USER: limits.user, Scope.GLOBAL: limits.global_}
    vector = embed_texts([query])[0] if query.strip() and any(wanted.values()) else None
    model_id = get_embedder().model_id
    seen = {_key(str(m.get("content", ""))) for m in context}
    for scope, limit in wanted.items():
        if not limit:
            parts[scope] = []
            continue
        # Ask for more than the limit so that dropping duplicates still fills it.
        fetch = limit * 2
        if vector is not None:
            where = SearchScope(
                scopes=frozenset({scope}),
                user_id="" if scope == Scope.GLOBAL else session.user_id,
                session=session if scope == Scope.SESSION else None,
            )
            found = search_memories(
                tenant=tenant, vector=vector, model_id=model_id, where=where, k=fetch, min_score=min_score
            )
        else:
            queryset = memories_for(tenant).filter(scope=scope)
            if scope == Scope.SESSION:
                queryset = queryset.filter(session=session)
            elif scope == Scope.USER:
                queryset = queryset.filter(user_id=session.user_id)
            found = recent_memories(queryset, limit=fetch)
        kept = []
        for item in found:
            key = _key(item.memory.content)
            if key not in seen:
                seen.add(key)
                kept.append(item)
        parts[scope] = kept[:limit]
    return Recall(
        query=query,
        context=context,
        session=parts[Scope.SESSION],
        user=parts[Scope.USER],
        global_=parts[Scope.GLOBAL],
    )
