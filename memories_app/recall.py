"""Recall: what an agent puts in its prompt for one turn, in one read.

Parts, by priority: the session's hot context (its latest messages), then the session's own memories,
then the user's memories, then the tenant's global knowledge. Each part has its own limit; a memory whose
text already appears in a higher-priority part is left out of the lower ones. With a query (or, without
one, the text of the latest user message of the context, its last MEMORY_RECALL_QUERY_MAX_CHARS characters
when longer) memories are ranked by similarity; otherwise newest first, each scored 0 (so a positive
`min_score` leaves those parts empty). A query taken from the context that the embedder refuses (over its
model's context all the same) is dropped for newest first: the agent asked for none, and a recall that fails
until the user speaks again would cost it its context too. A query the agent sent that is refused is a 422.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from memories_app.embeddings import get_embedder
from memories_app.models import Scope
from memories_app.selectors import (
    UNRANKED_SCORE,
    ScoredMemory,
    SearchScope,
    memories_for,
    message_text,
    recent_memories,
    search_memories,
    session_messages,
)
from memories_app.services import embed_texts
from memory_admin.errors import Unprocessable
from sessions_app.models import AgentSession

_SPACE = re.compile(r"\s+")
# A part whose best candidates repeat texts already recalled reads further, in growing pages, up to this many
# candidates: enough for any limit the API takes, while a scope full of copies cannot hold the request for long.
_MAX_CANDIDATES = 1000


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
    """The text of the latest user message that has any, its end only when longer than
    MEMORY_RECALL_QUERY_MAX_CHARS (a pasted document is followed, as a rule, by what the user asks of it)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        text = message_text(message)
        if text.strip():
            return _ending(text, settings.MEMORY_RECALL_QUERY_MAX_CHARS)
    return ""


def _ending(text: str, limit: int) -> str:
    """The last `limit` characters of `text`, from the start of a word (a word cut in two only adds noise)."""
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    if not text[-limit - 1].isspace():
        space = _SPACE.search(tail)
        if space is not None and space.end() < len(tail):
            tail = tail[space.end() :]
    return tail.strip()


def _key(text: str) -> str:
    return _SPACE.sub(" ", text.strip().lower())


def _candidates(
    *, session: AgentSession, scope: str, vector: list[float] | None, model_id: str, min_score: float
) -> Callable[[int], list[ScoredMemory]]:
    """The first k memories of a part, by similarity to `vector`, or newest first without one.

    Without a vector every memory scores 0, so a positive `min_score` keeps none of them, as it would keep
    no memory that a query scored 0.
    """
    if vector is None:
        if min_score > UNRANKED_SCORE:
            return lambda k: []
        queryset = memories_for(session.tenant).filter(scope=scope)
        if scope == Scope.SESSION:
            queryset = queryset.filter(session=session)
        elif scope == Scope.USER:
            queryset = queryset.filter(user_id=session.user_id)
        return lambda k: recent_memories(queryset, limit=k)
    where = SearchScope(
        scopes=frozenset({scope}),
        user_id="" if scope == Scope.GLOBAL else session.user_id,
        session=session if scope == Scope.SESSION else None,
    )
    return lambda k: search_memories(
        tenant=session.tenant, vector=vector, model_id=model_id, where=where, k=k, min_score=min_score
    )


def _first_unseen(fetch: Callable[[int], list[ScoredMemory]], *, limit: int, seen: set[str]) -> list[ScoredMemory]:
    """The first `limit` candidates, in `fetch`'s order, whose text is not in `seen`; their texts join `seen`
    (only theirs: a candidate left out by the limit does not hide its text from the lower parts).

    `fetch(k)` answers the first k candidates. When duplicates use up a page, the next, larger one is read
    (its first rows, seen already, are skipped), until the limit is met, the candidates run out, or
    _MAX_CANDIDATES were read.
    """
    kept: list[ScoredMemory] = []
    considered: set[object] = set()
    size = limit * 2
    while True:
        found = fetch(size)
        for item in found:
            if item.memory.pk in considered:
                continue
            considered.add(item.memory.pk)
            key = _key(item.memory.content)
            if key in seen:
                continue
            seen.add(key)
            kept.append(item)
            if len(kept) == limit:
                return kept
        if len(found) < size or size >= _MAX_CANDIDATES:
            return kept
        size = min(size * 4, _MAX_CANDIDATES)


def recall(*, session: AgentSession, query: str, limits: RecallLimits, min_score: float) -> Recall:
    """The merged recall for a session (see the module docstring). Unavailable (503) if the embedder is down
    and there is something to rank; Unprocessable (422) if it refuses the `query` given."""
    messages = session_messages(session)
    context = messages[-limits.context :] if limits.context else []
    given = bool(query)
    query = query or _last_user_message(messages)
    parts: dict[str, list[ScoredMemory]] = {}
    wanted = {Scope.SESSION: limits.session, Scope.USER: limits.user, Scope.GLOBAL: limits.global_}
    vector = None
    if query.strip() and any(wanted.values()):
        try:
            vector = embed_texts([query])[0]
        except Unprocessable:
            if given:
                raise
            query = ""  # refused even shortened: nothing to rank by (see the module docstring)
    model_id = get_embedder().model_id
    seen = {_key(message_text(m)) for m in context}
    for scope, limit in wanted.items():
        candidates = _candidates(session=session, scope=scope, vector=vector, model_id=model_id, min_score=min_score)
        parts[scope] = _first_unseen(candidates, limit=limit, seen=seen) if limit else []
    return Recall(
        query=query,
        context=context,
        session=parts[Scope.SESSION],
        user=parts[Scope.USER],
        global_=parts[Scope.GLOBAL],
    )
