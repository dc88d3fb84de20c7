"""A text the embedder refuses for good (OpenAI's 400 for an input over the model's context) is a 422 naming
the refusal, with nothing stored, for a store put and a store search: a 503 told the client to retry it."""

from __future__ import annotations

from conftest import World
from langgraph_app.models import StoreItem
from memories_app.tests.conftest import FakeOpenAI, fake_openai  # noqa: F401 - the fixture

BATCH = "/api/v1/langgraph/store/batch"


def test_a_put_whose_indexed_text_the_embedder_refuses_is_a_422_and_stores_nothing(
    world: World,
    fake_openai: FakeOpenAI,  # noqa: F811
) -> None:
    fake_openai.refuse_text = "TOO LONG"
    ops = [
        {"op": "put", "namespace": ["docs"], "key": key, "value": {"text": text}, "index": ["text"]}
        for key, text in (("fine", "A text it embeds."), ("refused", "TOO LONG for the model"))
    ]

    response = world.acme.client.post(BATCH, {"ops": ops}, format="json")

    assert response.status_code == 422, response.json()
    error = response.json()["error"]
    assert error["code"] == "unprocessable" and "The embedder refused" in error["message"]
    assert "maximum context length" in error["message"]
    assert not StoreItem.objects.exists()


def test_a_search_whose_query_the_embedder_refuses_is_a_422(
    world: World,
    fake_openai: FakeOpenAI,  # noqa: F811
) -> None:
    fake_openai.refuse_text = "TOO LONG"
    put = {"op": "put", "namespace": ["docs"], "key": "a", "value": {"text": "A text it embeds."}, "index": ["text"]}
    search = {"op": "search", "namespace_prefix": ["docs"], "query": "TOO LONG a query"}

    # (With no item to rank, the query would not be embedded at all.)
    response = world.acme.client.post(BATCH, {"ops": [put, search]}, format="json")

    assert response.status_code == 422 and response.json()["error"]["code"] == "unprocessable"
