"""Dashboard pages for users: finding one, their profile, memories by scope with decay and access statistics,
sessions, semantic search, and each memory's history; bad input never a 500."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from conftest import World, logged_in
from langgraph_app.store import Op, run_batch
from memories_app.background import ACCESS_KEY
from memories_app.embeddings import reset_embedder
from memories_app.models import Memory
from memories_app.profiles import update_profile
from memories_app.services import NewMemory, create_memories, create_memory, update_memory
from memory_admin.health import redis_client
from sessions_app.models import AgentSession
from sessions_app.services import create_session
from tenants_app.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _hashing_embedder() -> Iterator[None]:
    with override_settings(EMBEDDING_PROVIDER="hashing", EMBEDDING_DIMENSIONS=0, OPENAI_CHAT_MODEL=None):
        reset_embedder()
        yield
    reset_embedder()


def _url(tenant: Tenant, user_id: str) -> str:
    return f"/users/{tenant.pk}/{quote(user_id, safe='/')}/"


def _session(world: World, session_id: str = "s-1", user_id: str = "alice", tenant: Any = None) -> AgentSession:
    session, _ = create_session(tenant=tenant or world.acme.tenant, user_id=user_id, session_id=session_id)
    return session


def _memory(world: World, content: str, *, scope: str = "user", user_id: str = "alice", **extra: Any) -> Memory:
    tenant = extra.pop("tenant", world.acme.tenant)
    owner = "" if scope == "global" else user_id
    return create_memory(tenant=tenant, item=NewMemory(scope=scope, user_id=owner, content=content, **extra))


def _alice(world: World) -> dict[str, Any]:
    """Alice of acme: a profile, two sessions, memories in every scope, and other people's memories beside."""
    first = _session(world, "trip-planning")
    _session(world, "support-chat")
    update_profile(
        tenant=world.acme.tenant,
        user_id="alice",
        expected_versions=None,
        preferences={"language": "Norwegian"},
        facts={"home": "Alice lives in Oslo"},
        record_interaction=True,
    )
    return {
        "session_memory": _memory(world, "She asked for a window seat", scope="session", session_id="trip-planning"),
        "user_memory": _memory(world, "Alice is allergic to peanuts"),
        "global_memory": _memory(world, "Opening hours are nine to five", scope="global"),
        "bob_memory": _memory(world, "Bob likes jazz", user_id="bob"),
        "outsider_memory": _memory(world, "Alice of globex likes tea", tenant=world.outsider.tenant),
        "session": first,
    }


# --- finding a user --------------------------------------------------------------------------------------


def test_finding_a_known_user_goes_to_their_page(world: World) -> None:
    _session(world)

    response = logged_in(world.support).get("/users/", {"tenant": str(world.acme.tenant.pk), "user_id": "alice"})

    assert response.status_code == 302
    assert response["Location"] == _url(world.acme.tenant, "alice")


def test_finding_an_unknown_user_says_so_on_the_search_page(world: World) -> None:
    _session(world, tenant=world.outsider.tenant)  # alice exists, but in another tenant

    response = logged_in(world.support).get("/users/", {"tenant": str(world.acme.tenant.pk), "user_id": "alice"})

    assert response.status_code == 200
    assert "acme has no user “alice”" in response.content.decode()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tenant": "not-a-uuid", "user_id": "alice"}, "is not a valid UUID"),
        ({"tenant": "00000000-0000-0000-0000-000000000000", "user_id": "alice"}, "Select a valid choice"),
        ({"tenant": "ACME", "user_id": "al\x00ice"}, "Null characters are not allowed"),
        ({"tenant": "ACME", "user_id": "a" * 257}, "at most 256 characters"),
        ({"tenant": "ACME", "user_id": ""}, "This field is required"),
    ],
)
def test_bad_find_input_is_explained_on_the_page(world: World, params: dict[str, str], message: str) -> None:
    if params["tenant"] == "ACME":
        params = {**params, "tenant": str(world.acme.tenant.pk)}

    response = logged_in(world.support).get("/users/", params)

    assert response.status_code == 200
    assert message in response.content.decode()


def test_finding_a_user_keeps_the_spaces_around_their_id(world: World) -> None:
    _session(world, "spaced", user_id=" bob ")
    _session(world, "plain", user_id="bob")
    _session(world, "only-spaced", user_id=" carol ")
    client = logged_in(world.support)

    spaced = client.get("/users/", {"tenant": str(world.acme.tenant.pk), "user_id": " bob "})
    carol = client.get("/users/", {"tenant": str(world.acme.tenant.pk), "user_id": " carol "})

    assert spaced.status_code == 302 and spaced["Location"] == _url(world.acme.tenant, " bob ")
    assert carol.status_code == 302 and carol["Location"] == _url(world.acme.tenant, " carol ")
    assert client.get(carol["Location"]).context["user_id"] == " carol "


def test_a_user_id_of_only_spaces_is_explained_on_the_find_page(world: World) -> None:
    response = logged_in(world.support).get("/users/", {"tenant": str(world.acme.tenant.pk), "user_id": "   "})

    assert response.status_code == 200
    assert "A user id needs more than spaces." in response.content.decode()


# --- the user page ---------------------------------------------------------------------------------------


def test_the_user_page_shows_the_profile_with_preferences_facts_interactions_and_last_activity(world: World) -> None:
    _alice(world)

    response = logged_in(world.support).get(_url(world.acme.tenant, "alice"))

    page = response.content.decode()
    assert response.status_code == 200
    assert "<dt>Interactions</dt><dd>1</dd>" in page
    assert "Alice lives in Oslo" in page and "<code>home</code>" in page
    assert "<code>language</code></dt><dd><code>&quot;Norwegian&quot;</code></dd>" in page
    assert response.context["profile"].last_active_at is not None
    assert "never" not in page.split('id="profile"')[1].split("</dl>")[0]


def test_a_profile_with_a_preference_and_a_fact_named_items_shows_them_on_the_user_page(world: World) -> None:
    update_profile(
        tenant=world.acme.tenant,
        user_id="alice",
        expected_versions=None,
        preferences={"items": "compact", "seat": "aisle"},
        facts={"items": "Alice collects stamps"},
    )

    response = logged_in(world.support).get(_url(world.acme.tenant, "alice"))

    page = response.content.decode()
    assert response.status_code == 200
    assert "<code>items</code></dt><dd><code>&quot;compact&quot;</code></dd>" in page
    assert "<code>items</code></dt><dd>Alice collects stamps</dd>" in page
    assert page.index("<code>items</code></dt><dd><code>") < page.index("<code>seat</code>")  # sorted by key


def test_structured_preference_values_show_as_json(world: World) -> None:
    update_profile(
        tenant=world.acme.tenant,
        user_id="alice",
        expected_versions=None,
        preferences={"notify": {"email": True, "phone": None}, "seats": ["aisle", "exit row"]},
    )

    page = logged_in(world.support).get(_url(world.acme.tenant, "alice")).content.decode()

    assert "<code>{&quot;email&quot;: true, &quot;phone&quot;: null}</code>" in page
    assert "<code>[&quot;aisle&quot;, &quot;exit row&quot;]</code>" in page
    preferences = page.split('id="preferences"')[1].split("</dl>")[0]
    assert "True" not in preferences and "None" not in preferences


def test_the_user_page_lists_the_users_memories_by_scope_and_the_tenants_global_ones_apart(world: World) -> None:
    alice = _alice(world)

    response = logged_in(world.support).get(_url(world.acme.tenant, "alice"))

    sections = {section.scope: [row.memory.pk for row in section.rows] for section in response.context["sections"]}
    assert sections == {
        "session": [alice["session_memory"].pk],
        "user": [alice["user_memory"].pk],
        "global": [alice["global_memory"].pk],
    }
    page = response.content.decode()
    assert "Global memories of acme" in page and "not this user's data" in page
    assert "Bob likes jazz" not in page and "Alice of globex" not in page
    assert f'href="/sessions/{alice["session"].pk}/">trip-planning</a>' in page


def test_each_memory_shows_its_decay_score_and_access_statistics(world: World) -> None:
    alice = _alice(world)
    used, stale = alice["user_memory"], _memory(world, "Alice once mentioned a dentist appointment")
    long_ago = timezone.now() - timedelta(days=400)
    Memory.objects.filter(pk=used.pk).update(access_count=7, last_accessed_at=timezone.now())
    Memory.objects.filter(pk=stale.pk).update(created_at=long_ago, updated_at=long_ago)

    response = logged_in(world.support).get(_url(world.acme.tenant, "alice"))

    rows = {row.memory.pk: row for row in response.context["sections"][1].rows}
    used.refresh_from_db()
    stale.refresh_from_db()
    assert rows[used.pk].decay == pytest.approx(used.decay_score(), rel=1e-3)
    assert rows[stale.pk].decay == pytest.approx(stale.decay_score(), rel=1e-3)
    assert rows[stale.pk].evictable and not rows[used.pk].evictable
    page = response.content.decode()
    used_row = re.search(rf'<tr data-memory="{used.pk}".*?</tr>', page, re.S)
    assert used_row and "<td>7</td>" in used_row.group(0)
    assert f"{rows[used.pk].decay:.3f}" in used_row.group(0)
    stale_row = re.search(rf'<tr data-memory="{stale.pk}".*?</tr>', page, re.S)
    assert stale_row and "fading" in stale_row.group(0) and "never" in stale_row.group(0)


def test_the_user_page_lists_the_users_sessions_with_links_to_their_pages(world: World) -> None:
    alice = _alice(world)
    _session(world, "bobs-session", user_id="bob")

    response = logged_in(world.support).get(_url(world.acme.tenant, "alice"))

    assert {s.session_id for s in response.context["sessions"]} == {"trip-planning", "support-chat"}
    assert f'<a href="/sessions/{alice["session"].pk}/">trip-planning</a>' in response.content.decode()


def _store(tenant: Tenant, *namespaces: tuple[str, ...], ttl: float | None = None) -> None:
    ops = [
        Op("put", {"namespace": list(namespace), "key": "seat", "value": {"text": "aisle, " * 80}, "ttl": ttl})
        for namespace in namespaces
    ]
    run_batch(tenant=tenant, ops=ops)


def test_the_user_page_lists_the_langgraph_store_items_whose_namespace_names_the_user(world: World) -> None:
    _alice(world)
    _store(world.acme.tenant, ("users", "alice", "prefs"), ("alice",))
    _store(world.acme.tenant, ("users", "alice-team"), ("users", "bob"))
    _store(world.outsider.tenant, ("users", "alice"))

    response = logged_in(world.support).get(_url(world.acme.tenant, "alice"))

    assert response.context["store_total"] == 2
    assert sorted(row.namespace for row in response.context["store_items"]) == ["alice", "users / alice / prefs"]
    section = response.content.decode().split('id="store-items"')[1].split("</section>")[0]
    assert "<code>users / alice / prefs</code>" in section and "alice-team" not in section
    assert "…" in section  # a long value is cut


def test_a_user_known_only_by_store_items_is_found_and_has_a_page(world: World) -> None:
    _store(world.acme.tenant, ("users", "carol"), ttl=10)

    found = logged_in(world.support).get("/users/", {"tenant": str(world.acme.tenant.pk), "user_id": "carol"})
    page = logged_in(world.support).get(_url(world.acme.tenant, "carol"))

    assert found.status_code == 302 and found["Location"] == _url(world.acme.tenant, "carol")
    assert page.status_code == 200 and page.context["store_total"] == 1


def test_a_memory_with_changes_and_a_merge_links_to_its_history(world: World) -> None:
    memory = _memory(world, "Alice lives in Oslo. She has a cat.")
    update_memory(
        tenant=world.acme.tenant,
        memory_id=memory.pk,
        actor="agent",
        expected_versions={1},
        content="Alice lives in Oslo. She has a cat. She cycles.",
    )
    update_memory(
        tenant=world.acme.tenant,
        memory_id=memory.pk,
        actor="other agent",
        expected_versions={1},
        content="Alice lives in Oslo. She speaks Norwegian.",
        merge_on_conflict=True,
    )
    client = logged_in(world.support)

    user_page = client.get(_url(world.acme.tenant, "alice")).content.decode()
    history = client.get(f"/memories/{memory.pk}/")

    assert f'<a href="/memories/{memory.pk}/">v3</a> <span class="muted">· 2 changes, 1 merge</span>' in user_page
    page = history.content.decode()
    assert history.status_code == 200
    assert [r.version for r in history.context["revisions"]] == [2, 3]
    assert "<del>Alice lives in Oslo. She has a cat.</del>" in page
    assert "Merged (deterministic)" in page
    assert "Alice lives in Oslo. She speaks Norwegian." in page and "written against v1" in page


def test_an_unknown_or_deleted_memory_page_is_a_404(world: World) -> None:
    memory = _memory(world, "soon gone")
    Memory.objects.filter(pk=memory.pk).update(deleted_at=timezone.now())
    client = logged_in(world.support)

    assert client.get(f"/memories/{memory.pk}/").status_code == 404
    assert client.get("/memories/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.get("/memories/not-a-uuid/").status_code == 404


# --- semantic search -------------------------------------------------------------------------------------


def test_semantic_search_ranks_the_users_matching_memory_first(world: World) -> None:
    alice = _alice(world)

    response = logged_in(world.support).get(_url(world.acme.tenant, "alice"), {"q": "is alice allergic to peanuts"})

    rows = response.context["search"].rows
    assert rows[0].memory.pk == alice["user_memory"].pk
    assert rows[0].score == pytest.approx(max(row.score for row in rows))
    assert {row.memory.user_id for row in rows} == {"alice"}
    assert alice["global_memory"].pk not in {row.memory.pk for row in rows}
    assert 'id="search-results"' in response.content.decode()


def test_semantic_search_can_include_the_tenants_global_memories(world: World) -> None:
    alice = _alice(world)

    response = logged_in(world.support).get(
        _url(world.acme.tenant, "alice"), {"q": "opening hours", "include_global": "on"}
    )

    assert response.context["search"].rows[0].memory.pk == alice["global_memory"].pk


def test_the_search_box_names_the_hashing_embedder_and_what_it_means(world: World) -> None:
    _alice(world)

    page = logged_in(world.support).get(_url(world.acme.tenant, "alice")).content.decode()

    assert 'data-provider="hashing"' in page
    assert "word matching only" in page
    assert "does not understand synonyms or paraphrase" in page


def test_searching_from_the_dashboard_does_not_count_as_an_access(world: World) -> None:
    _alice(world)

    logged_in(world.support).get(_url(world.acme.tenant, "alice"), {"q": "peanuts"})

    assert redis_client().hlen(ACCESS_KEY) == 0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("pea\x00nuts", "Null characters are not allowed"),
        ("x" * 8001, "at most 8000 characters"),
        ("   ", "This field is required"),
    ],
)
def test_bad_search_text_is_explained_and_nothing_is_searched(world: World, query: str, message: str) -> None:
    _alice(world)

    response = logged_in(world.support).get(_url(world.acme.tenant, "alice"), {"q": query})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert response.context["search"] is None


def test_an_embedder_that_does_not_answer_is_a_message_not_a_500(world: World, unused_tcp_port: int) -> None:
    _alice(world)
    down = {
        "EMBEDDING_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{unused_tcp_port}/v1",
        "OPENAI_MAX_RETRIES": 0,
        "OPENAI_TIMEOUT_SECONDS": 2.0,
    }
    with override_settings(**down):
        reset_embedder()
        response = logged_in(world.support).get(_url(world.acme.tenant, "alice"), {"q": "peanuts"})

    page = response.content.decode()
    assert response.status_code == 200
    assert "The embedder did not answer or refused the query, so nothing was searched" in page
    assert "not searchable until re-embedded" in page  # the stored vectors are the hashing embedder's


# --- bad addresses ---------------------------------------------------------------------------------------


def test_an_unknown_tenant_or_user_gets_a_page_that_says_which(world: World) -> None:
    _session(world)
    client = logged_in(world.support)

    no_tenant = client.get("/users/00000000-0000-0000-0000-000000000000/alice/")
    no_user = client.get(_url(world.acme.tenant, "zoe"))

    assert no_tenant.status_code == 404 and "There is no tenant with that id." in no_tenant.content.decode()
    assert no_user.status_code == 404 and "acme has no user “zoe”" in no_user.content.decode()


@pytest.mark.parametrize("user_id", ["al%00ice", "a" * 300, "%20%20"])
def test_an_impossible_user_id_in_the_address_is_a_404_page(world: World, user_id: str) -> None:
    response = logged_in(world.support).get(f"/users/{world.acme.tenant.pk}/{user_id}/")

    assert response.status_code == 404
    assert "That is not a user id" in response.content.decode()


def test_a_malformed_tenant_id_in_the_address_is_a_404(world: World) -> None:
    assert logged_in(world.support).get("/users/not-a-uuid/alice/").status_code == 404


def test_user_ids_with_slashes_spaces_and_newlines_have_pages(world: World) -> None:
    client = logged_in(world.support)
    for user_id in ("team/alice", "alice smith", "line\nbreak", "émile?#&"):
        _memory(world, f"memory of {user_id}", user_id=user_id)
        found = client.get("/users/", {"tenant": str(world.acme.tenant.pk), "user_id": user_id})

        assert found.status_code == 302, user_id
        page = client.get(found["Location"])
        assert page.status_code == 200, user_id
        assert page.context["user_id"] == user_id


def _as_a_browser_asks(link: str) -> str:
    # Browsers and HTTP clients remove "." and ".." path segments before asking, %2E counting as a dot (WHATWG
    # URL); the server never sees them.
    return urlsplit(urljoin("http://testserver/", re.sub("%2e", ".", link, flags=re.IGNORECASE))).path


@pytest.mark.parametrize("user_id", [".", "..", "a/.", "./a", "team/../carol", "team/%2e%2e/carol", "~2F", "a~b"])
def test_a_user_id_with_dot_segments_opens_its_own_page_and_not_another_persons(world: World, user_id: str) -> None:
    _memory(world, "carol's own memory", user_id="carol")
    _memory(world, f"memory of {user_id}", user_id=user_id)
    client = logged_in(world.support)

    found = client.get("/users/", {"tenant": str(world.acme.tenant.pk), "user_id": user_id})
    page = client.get(_as_a_browser_asks(found["Location"]))

    assert found.status_code == 302
    assert page.status_code == 200
    assert page.context["user_id"] == user_id


def test_a_memory_links_to_the_page_of_its_own_person_whatever_their_id(world: World) -> None:
    _memory(world, "carol's own memory", user_id="carol")
    memory = _memory(world, "memory of a dotted id", user_id="team/../carol")
    client = logged_in(world.support)

    link = re.search(r'/ <a href="([^"]+)">', client.get(f"/memories/{memory.pk}/").content.decode())
    assert link is not None
    page = client.get(_as_a_browser_asks(html.unescape(link.group(1))))

    assert page.status_code == 200
    assert page.context["user_id"] == "team/../carol"


def test_the_address_of_a_users_page_reads_as_their_id_with_slashes_and_a_leading_dot_escaped(world: World) -> None:
    tenant = world.acme.tenant

    assert reverse("dashboard:user", args=[tenant.pk, "alice@example.com"]) == f"/users/{tenant.pk}/alice@example.com/"
    assert reverse("dashboard:user", args=[tenant.pk, "team/alice"]) == f"/users/{tenant.pk}/team~2Falice/"
    assert reverse("dashboard:user", args=[tenant.pk, ".."]) == f"/users/{tenant.pk}/~2E./"
    assert reverse("dashboard:user", args=[tenant.pk, "a~b"]) == f"/users/{tenant.pk}/a~7Eb/"


# --- cost and roles --------------------------------------------------------------------------------------


def _busy_user(world: World, user_id: str, *, sessions: int, memories: int) -> None:
    for index in range(sessions):
        _session(world, f"{user_id}-s{index}", user_id=user_id)
    items = [NewMemory(scope="user", user_id=user_id, content=f"{user_id} fact {i}") for i in range(memories)]
    for index in range(memories):
        items.append(NewMemory(scope="session", session_id=f"{user_id}-s{index % sessions}", content=f"note {index}"))
    created = create_memories(tenant=world.acme.tenant, items=items)
    for memory in created[:memories:3]:
        update_memory(
            tenant=world.acme.tenant, memory_id=memory.pk, actor="a", expected_versions=None, content="changed"
        )


def test_the_user_page_costs_the_same_queries_however_many_memories_and_sessions(world: World) -> None:
    _busy_user(world, "few", sessions=1, memories=1)
    _busy_user(world, "many", sessions=30, memories=60)
    _store(world.acme.tenant, ("users", "few"))
    _store(world.acme.tenant, *[("users", "many", f"topic-{index}") for index in range(60)])
    _memory(world, "a global one", scope="global")
    client = logged_in(world.support)
    client.get(_url(world.acme.tenant, "few"))

    counts = []
    for user_id in ("few", "many"):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(_url(world.acme.tenant, user_id), {"q": "fact"}).status_code == 200
        counts.append(len(queries))

    assert counts[0] == counts[1], counts
    assert counts[1] <= 17


def test_user_pages_refuse_people_without_a_staff_role(world: World) -> None:
    alice = _alice(world)
    client = logged_in(world.nobody)

    for path in ("/users/", _url(world.acme.tenant, "alice"), f"/memories/{alice['user_memory'].pk}/"):
        assert client.get(path).status_code == 403, path


def test_anonymous_visitors_are_sent_to_log_in(world: World) -> None:
    response = Client().get(_url(world.acme.tenant, "alice"))

    assert response.status_code == 302 and response["Location"].startswith("/login/")
