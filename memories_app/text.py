"""Merging two versions of a memory and summarising a session: through the chat model when OPENAI_CHAT_MODEL
is configured, deterministically otherwise. Both deterministic paths keep only sentences from their inputs,
so they never invent anything.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import openai
from django.conf import settings

from memories_app.embeddings import EmbedderUnavailable
from memories_app.embeddings.openai_provider import describe_failure, make_client
from memories_app.metrics import LANGUAGE_MODEL_REQUESTS

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)
# Words too common to say what a sentence is about.
_STOPWORDS = frozenset(
    (
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "so",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
        "you",
        "your",
        "we",
        "they",
        "he",
        "she",
        "my",
        "our",
        "me",
        "not",
        "do",
        "does",
        "did",
        "can",
    )
)


class LanguageModelUnavailable(EmbedderUnavailable):
    """The configured chat model could not answer."""


@dataclass(frozen=True)
class TextResult:
    text: str
    method: str  # "llm" or "deterministic"


def sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def _normal(sentence: str) -> str:
    return " ".join(_WORD.findall(sentence.lower()))


def deterministic_merge(current: str, incoming: str) -> str:
    """The current text, then each sentence of the incoming text that it does not already say."""
    seen = {_normal(sentence) for sentence in sentences(current)}
    additions = [sentence for sentence in sentences(incoming) if _normal(sentence) not in seen]
    if not additions:
        return current
    joined = " ".join(additions)
    return f"{current.rstrip()} {joined}" if current.strip() else joined


def extractive_summary(texts: Sequence[str], *, max_sentences: int) -> list[str]:
    """The sentences that best cover the texts' frequent words, in their original order, without repeats."""
    candidates: list[str] = []
    seen: set[str] = set()
    for text in texts:
        for sentence in sentences(text):
            key = _normal(sentence)
            if key and key not in seen:
                seen.add(key)
                candidates.append(sentence)
    frequencies = Counter(
        word for sentence in candidates for word in set(_normal(sentence).split()) if word not in _STOPWORDS
    )

    def weight(sentence: str) -> float:
        words = [word for word in _normal(sentence).split() if word not in _STOPWORDS]
        return float(sum(frequencies[word] for word in set(words)) / (1 + len(words)) ** 0.5)

    ranked = sorted(range(len(candidates)), key=lambda index: (-weight(candidates[index]), index))
    chosen = sorted(ranked[:max_sentences])
    return [candidates[index] for index in chosen]


def _chat(system: str, user: str, *, purpose: str) -> str:
    model = settings.OPENAI_CHAT_MODEL
    assert model is not None
    client = make_client(
        api_key=settings.OPENAI_API_KEY or "",
        base_url=settings.OPENAI_BASE_URL,
        timeout=settings.OPENAI_TIMEOUT_SECONDS,
        max_retries=settings.OPENAI_MAX_RETRIES,
    )
    try:
        response = client.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            temperature=0,
        )
    except openai.OpenAIError as exc:
        LANGUAGE_MODEL_REQUESTS.labels(purpose, "error").inc()
        raise LanguageModelUnavailable(f"The language model is unavailable: {describe_failure(exc)}.") from exc
    content = (response.choices[0].message.content or "").strip() if response.choices else ""
    if not content:
        LANGUAGE_MODEL_REQUESTS.labels(purpose, "error").inc()
        raise LanguageModelUnavailable("The language model returned an empty answer.")
    LANGUAGE_MODEL_REQUESTS.labels(purpose, "ok").inc()
    return content


def llm_configured() -> bool:
    return bool(settings.OPENAI_CHAT_MODEL and settings.OPENAI_API_KEY)


def merge_texts(current: str, incoming: str) -> TextResult:
    """One text holding what both versions of a memory say. Raises LanguageModelUnavailable."""
    if not llm_configured():
        return TextResult(deterministic_merge(current, incoming), "deterministic")
    merged = _chat(
        "You merge two versions of a fact stored about a user into one short text. Keep every piece of "
        "information; when they contradict, prefer the second (newer) version. Answer with the text only.",
        f"First version:\n{current}\n\nSecond version:\n{incoming}",
        purpose="merge",
    )
    return TextResult(merged, "llm")


def summarise(texts: Sequence[str], *, max_items: int) -> tuple[list[str], str]:
    """Up to `max_items` standalone facts worth remembering from a session, and the method used."""
    if not texts:
        return [], "deterministic"
    if not llm_configured():
        return extractive_summary(texts, max_sentences=max_items), "deterministic"
    answer = _chat(
        f"Extract at most {max_items} durable facts about the user from this agent session, one per line, "
        "each a standalone sentence. Answer with the lines only.",
        "\n".join(texts),
        purpose="summary",
    )
    lines = [line.strip(" -*\t") for line in answer.splitlines()]
    return [line for line in lines if line][:max_items], "llm"
