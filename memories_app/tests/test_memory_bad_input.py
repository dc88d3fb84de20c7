from __future__ import annotations

import pytest
from django.test import override_settings

from memories_app.models import Memory
from memories_app.tests.conftest import create, make_session
from tests.clients import AgentClient


def assert_refused(response, status=400):
    assert response.status_code == status, response.content
    assert response.json()["error"]["status"] == status
    assert Memory.objects.count() == 0


def test_create_with_wrong_dimension_returns_400_and_stores_nothing(world):
    response = create(world.acme.client, scope="user", user_id="alice", content="tea", embedding=[0.1, 0.2, 0.3])

    assert_refused(response)
    assert "384" in response.json()["error"]["details"]["fields"]["embedding"][0]


def test_create_with_empty_content_returns_400(world):
    assert_refused(create(world.acme.client, scope="user", user_id="alice", content=""))
    assert_refused(create(world.acme.client, scope="user", user_id="alice", content="   \n"))


def test_create_with_unknown_scope_returns_400(world):
    assert_refused(create(world.acme.client, scope="team", user_id="alice", content="tea"))


@override_settings(MEMORY_MAX_CONTENT_CHARS=100)
def test_create_with_oversized_content_returns_400(world):
    assert_refused(create(world.acme.client, scope="user", user_id="alice", content="x" * 101))


@override_settings(MEMORY_MAX_METADATA_BYTES=50)
def test_create_with_oversized_metadata_returns_400(world):
    response = create(world.acme.client, scope="user", user_id="alice", content="tea", metadata={"k": "v" * 60})

    assert_refused(response)


def test_create_with_another_tenants_session_returns_400(world):
    make_session(world, session_id="theirs", outsider=True)

    assert_refused(create(world.acme.client, scope="session", session_id="theirs", content="tea"))


def test_create_with_a_session_of_another_user_returns_400(world):
    make_session(world, user_id="bob", session_id="s-bob")

    response = create(world.acme.client, scope="user", user_id="alice", session_id="s-bob", content="tea")

    assert_refused(response)


def test_create_session_memory_without_session_returns_400(world):
    assert_refused(create(world.acme.client, scope="session", user_id="alice", content="tea"))


def test_create_user_memory_without_user_returns_400(world):
    assert_refused(create(world.acme.client, scope="user", content="tea"))


def test_create_global_memory_with_a_user_returns_400(world):
    assert_refused(create(world.acme.client, scope="global", user_id="alice", content="tea"))


def test_create_with_an_unknown_field_returns_400(world):
    assert_refused(create(world.acme.client, scope="user", user_id="alice", content="tea", colour="red"))


@pytest.mark.parametrize(
    "vector",
    [
        [0.0] * 384,
        [1e39] + [0.0] * 383,
        ["a"] + [0.0] * 383,
        [True] * 2001,
    ],
    ids=["all-zero", "beyond-float4", "not-a-number", "too-long"],
)
def test_create_with_an_unusable_vector_returns_400(world, vector):
    assert_refused(create(world.acme.client, scope="user", user_id="alice", content="tea", embedding=vector))


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"scope": "user", "content": NaN}', b'{"scope": "user", "content": "a\\u0000b"}'],
    ids=["malformed", "not-an-object", "nan", "nul-character"],
)
def test_create_with_a_malformed_body_returns_400(world, body):
    response = world.acme.client.post("/api/v1/memories", body, content_type="application/json")

    assert_refused(response)


def test_get_with_a_malformed_id_returns_404(world):
    response = world.acme.client.get("/api/v1/memories/not-a-uuid")

    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_create_without_an_api_key_returns_401(world):

    assert_refused(create(AgentClient(), scope="global", content="tea"), status=401)
