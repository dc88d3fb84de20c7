"""OpenAI embeddings (or any server speaking the same protocol) through the official `openai` client.

Inputs are sent in batches of EMBEDDING_BATCH_SIZE; the client retries connection errors, 408/409/429 and
5xx answers OPENAI_MAX_RETRIES times with exponential backoff, each attempt bounded by
OPENAI_TIMEOUT_SECONDS. Whatever still fails becomes EmbedderUnavailable with a message naming the cause,
or EmbedderRefused when the server refused the texts themselves (another 4xx, such as OpenAI's 400 for a text
over the model's context) while it still embeds a short probe text: the same texts would be refused again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import openai

from memories_app.embeddings.base import EmbedderRefused, EmbedderUnavailable, normalised

NATIVE_DIMENSIONS = 1536
# 4xx answers about the server's state rather than the request (timeout, conflict, rate limit): the client
# retries them as it retries 5xx, and they stay outages when retries run out.
_TRANSIENT_CLIENT_ERRORS = frozenset({408, 409, 429})
# Embedded when the server refuses texts: if it refuses this too, the configuration is at fault (key, model,
# dimensions, URL), not the texts.
_PROBE_TEXT = "probe"


def make_client(*, api_key: str, base_url: str | None, timeout: float, max_retries: int) -> openai.OpenAI:
    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)


def _refuses_the_request(exc: openai.APIStatusError) -> bool:
    """Whether the server answered that this request cannot be served as sent (a 4xx other than 408, 409
    and 429): because of the texts, or of the configuration when it refuses every request."""
    return 400 <= exc.status_code < 500 and exc.status_code not in _TRANSIENT_CLIENT_ERRORS


def _refusal(exc: openai.APIStatusError, *, texts: int) -> str:
    """What the server refused and why, in its words (OpenAI's `error.message`, shortened)."""
    which = "the text" if texts == 1 else f"one of the {texts} texts"
    message = exc.body.get("message") if isinstance(exc.body, dict) else None
    said = " ".join(message.split())[:300] if isinstance(message, str) else ""
    return (
        f"The embedder refused {which}: the OpenAI-compatible server answered HTTP {exc.status_code}"
        + (f" ({said})" if said else "")
        + ". Sending it again unchanged fails the same way."
    )


def describe_failure(exc: openai.OpenAIError) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "the OpenAI-compatible server did not answer in time"
    if isinstance(exc, openai.APIConnectionError):
        return "the OpenAI-compatible server cannot be reached"
    if isinstance(exc, openai.AuthenticationError):
        return "the OpenAI-compatible server refused OPENAI_API_KEY"
    if isinstance(exc, openai.APIStatusError):
        return f"the OpenAI-compatible server answered HTTP {exc.status_code}"
    return f"the OpenAI client failed ({type(exc).__name__})"


class OpenAIEmbedder:
    description = (
        "OpenAI embeddings: semantic search that understands paraphrase; every write and text search "
        "calls the configured server."
    )

    def __init__(
        self,
        *,
        client: openai.OpenAI,
        model: str,
        dimensions: int,
        request_dimensions: bool,
        batch_size: int,
    ) -> None:
        self.client = client
        self.model = model
        self.dimensions = dimensions
        # Only text-embedding-3 models accept `dimensions`; send it only when a size was configured.
        self.request_dimensions = request_dimensions
        self.batch_size = batch_size
        self.model_id = f"openai:{model}-{dimensions}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._embed_batch(list(texts[start : start + self.batch_size])))
        return vectors

    def _create(self, batch: list[str]) -> Any:
        if self.request_dimensions:
            return self.client.embeddings.create(model=self.model, input=batch, dimensions=self.dimensions)
        return self.client.embeddings.create(model=self.model, input=batch)

    def _embeds_a_probe(self, count: int) -> bool:
        """Whether the server embeds `count` short texts: a batch it refuses for its size (too many inputs, a
        body too large for its limits) is refused as a probe of that size, and is no text's fault."""
        try:
            self._create([_PROBE_TEXT] * count)
        except Exception:  # any failure: the server is not embedding at all
            return False
        return True

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        try:
            response = self._create(batch)
        except openai.OpenAIError as exc:
            if (
                isinstance(exc, openai.APIStatusError)
                and _refuses_the_request(exc)
                and self._embeds_a_probe(len(batch))
            ):
                raise EmbedderRefused(_refusal(exc, texts=len(batch))) from exc
            raise EmbedderUnavailable(f"Embeddings are unavailable: {describe_failure(exc)}.") from exc
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            # The client decodes the answer itself (JSON, then base64 vectors): a server that answers 200 with
            # something else makes it raise these (ValueError covers JSONDecodeError and binascii.Error).
            raise EmbedderUnavailable(_malformed(f"{type(exc).__name__}: {str(exc)[:200]}")) from exc
        vectors = _vectors(response, texts=len(batch))
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise EmbedderUnavailable(
                    f"Embeddings are unavailable: model {self.model} returned {len(vector)} dimensions, "
                    f"EMBEDDING_DIMENSIONS expects {self.dimensions}."
                )
        return [normalised(vector) for vector in vectors]


def _malformed(why: str) -> str:
    return f"Embeddings are unavailable: the OpenAI-compatible server sent a malformed answer ({why})."


def _vectors(response: Any, *, texts: int) -> list[list[float]]:
    """The answer's vectors in the order of the texts, each a list of numbers; EmbedderUnavailable when the
    answer is not one vector per text. The client does not validate what it parsed, so nothing is assumed."""
    data = getattr(response, "data", None)
    if not isinstance(data, list):
        raise EmbedderUnavailable(_malformed("no list of embeddings"))
    if len(data) != texts:
        raise EmbedderUnavailable(
            f"Embeddings are unavailable: the server returned {len(data)} vectors for {texts} texts."
        )
    by_index: dict[int, list[float]] = {}
    for item in data:
        index, embedding = getattr(item, "index", None), getattr(item, "embedding", None)
        if type(index) is not int or not 0 <= index < texts or index in by_index:
            raise EmbedderUnavailable(_malformed("the embeddings' indexes do not name each text once"))
        if not isinstance(embedding, list) or not all(type(value) in (int, float) for value in embedding):
            raise EmbedderUnavailable(_malformed(f"embedding {index} is not a list of numbers"))
        try:
            by_index[index] = [float(value) for value in embedding]
        except OverflowError:  # an integer beyond float's range
            raise EmbedderUnavailable(_malformed(f"embedding {index} holds a number beyond float's range")) from None
    return [by_index[index] for index in range(texts)]
