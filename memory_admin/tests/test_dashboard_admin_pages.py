"""Admin-only dashboard pages: API keys (list, create with the key shown once, revoke after a confirmation)
and tenants with their counts; every other role gets the 403 page and no mutation buttons anywhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from conftest import World, logged_in
from memories_app.embeddings import reset_embedder
from memories_app.services import NewMemory, create_memory
from sessions_app.services import create_session
from tenants_app.models import ApiKey, Tenant
from tenants_app.services import issue_api_key, revoke_api_key
from tests.clients import AgentClient

pytestmark = pytest.mark.django_db

ADMIN_PAGES = ["/admin/keys/", "/admin/keys/new/", "/admin/tenants/"]


@pytest.fixture(autouse=True)
def _hashing_embedder() -> Iterator[None]:
    with override_settings(EMBEDDING_PROVIDER="hashing", EMBEDDING_DIMENSIONS=0):
        reset_embedder()
        yield
    reset_embedder()


def _whoami(raw_key: str) -> int:
    client = AgentClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client.get("/api/v1/whoami").status_code


def _shown_key(page: str) -> str | None:
    match = re.search(r'<code class="secret" id="new-key">(mk_[^<]+)</code>', page)
    return match.group(1) if match else None


def _create(client: Client, **form: object) -> Any:
    return client.post("/admin/keys/new/", form, follow=True)


# --- the keys list ---------------------------------------------------------------------------------------


def test_the_keys_list_shows_tenant_prefix_name_dates_and_revocation(world: World) -> None:
    revoked, _ = issue_api_key(tenant=world.acme.tenant, name="old bot")
    revoke_api_key(api_key_id=revoked.pk)
    _whoami(world.acme.raw_key)  # marks the key as used

    response = logged_in(world.admin).get("/admin/keys/")

    page = response.content.decode()
    rows = {key.name: key for key in response.context["page"].object_list}
    assert response.status_code == 200
    assert set(rows) == {"acme agent", "globex agent", "old bot"}
    assert f"<code>mk_{world.acme.api_key.prefix}_…</code>" in page
    acme_row = re.search(rf'<tr data-key="{world.acme.api_key.pk}".*?</tr>', page, re.S)
    assert acme_row and "never" not in acme_row.group(0) and "Revoke…" in acme_row.group(0)
    revoked_row = re.search(rf'<tr data-key="{revoked.pk}" class="revoked".*?</tr>', page, re.S)
    assert revoked_row and ">revoked<" in revoked_row.group(0) and "Revoke…" not in revoked_row.group(0)
    assert world.acme.api_key.key_hash not in page


def test_the_keys_list_filters_by_tenant_and_shrugs_off_a_bad_filter(world: World) -> None:
    client = logged_in(world.admin)

    acme = client.get("/admin/keys/", {"tenant": str(world.acme.tenant.pk)})
    bad = client.get("/admin/keys/", {"tenant": "nonsense\x00", "page": "-3"})

    assert [key.tenant for key in acme.context["page"].object_list] == [world.acme.tenant]
    assert bad.status_code == 200 and len(bad.context["page"].object_list) == 2


def test_the_keys_list_costs_the_same_queries_however_many_keys(world: World) -> None:
    client = logged_in(world.admin)
    client.get("/admin/keys/")
    with CaptureQueriesContext(connection) as few:
        client.get("/admin/keys/")
    for index in range(80):
        tenant = world.acme.tenant if index % 2 else world.outsider.tenant
        issue_api_key(tenant=tenant, name=f"bot {index}", created_by=world.admin)
    with CaptureQueriesContext(connection) as many:
        response = client.get("/admin/keys/")

    assert len(response.context["page"].object_list) == 50
    assert len(many) == len(few) <= 8, [q["sql"] for q in many]


# --- creating a key --------------------------------------------------------------------------------------


def test_a_key_created_on_the_page_works_is_shown_once_and_is_refused_once_revoked(world: World) -> None:
    client = logged_in(world.admin)

    created = _create(client, tenant=world.acme.tenant.pk, name="booking bot")

    raw_key = _shown_key(created.content.decode())
    assert raw_key is not None
    api_key = ApiKey.objects.get(name="booking bot")
    assert api_key.tenant == world.acme.tenant and api_key.created_by == world.admin
    assert created.redirect_chain == [(f"/admin/keys/{api_key.pk}/created/", 302)]
    assert _whoami(raw_key) == 200

    reload = client.get(f"/admin/keys/{api_key.pk}/created/")
    assert reload.status_code == 200
    assert _shown_key(reload.content.decode()) is None
    assert raw_key not in reload.content.decode()
    assert "shown once and cannot be shown again" in reload.content.decode()
    assert raw_key not in client.get("/admin/keys/").content.decode()

    confirm = client.get(f"/admin/keys/{api_key.pk}/revoke/")
    assert confirm.status_code == 200 and 'id="revoke-form"' in confirm.content.decode()
    assert _whoami(raw_key) == 200  # the confirmation page revokes nothing
    revoked = client.post(f"/admin/keys/{api_key.pk}/revoke/", follow=True)
    assert "Revoked acme/booking bot" in revoked.content.decode()
    assert _whoami(raw_key) == 401


def test_a_key_can_be_created_for_a_new_tenant(world: World) -> None:
    created = _create(logged_in(world.admin), new_tenant="Initech", name="first key")

    raw_key = _shown_key(created.content.decode())
    assert raw_key is not None
    assert ApiKey.objects.get(prefix=raw_key.split("_")[1]).tenant.name == "initech"
    assert _whoami(raw_key) == 200


@pytest.mark.parametrize("name", ["acme", "ACME", " Acme "])
def test_naming_a_new_tenant_that_exists_in_any_letter_case_is_a_form_error_and_issues_no_key(
    world: World, name: str
) -> None:
    before = ApiKey.objects.count(), Tenant.objects.count()

    response = logged_in(world.admin).post("/admin/keys/new/", {"new_tenant": name, "name": "new customer"})

    assert response.status_code == 200
    assert response.context["form"].errors == {"new_tenant": ["A tenant named acme exists; choose it above."]}
    assert (ApiKey.objects.count(), Tenant.objects.count()) == before


def test_the_new_key_is_shown_only_to_the_browser_session_that_created_it(world: World) -> None:
    creator, other_admin = logged_in(world.admin), logged_in(world.admin)
    _create(creator, tenant=world.acme.tenant.pk, name="k")  # follows the redirect: shown once
    api_key = ApiKey.objects.get(name="k")

    assert _shown_key(other_admin.get(f"/admin/keys/{api_key.pk}/created/").content.decode()) is None


def test_two_keys_created_at_once_in_one_browser_session_are_each_shown_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memory_admin.dashboard import admin_pages

    first_tab = logged_in(world.admin)
    second_tab = Client()
    second_tab.cookies = first_tab.cookies  # one browser session, two tabs

    def issue_while_the_other_tab_submits(**kwargs: Any) -> Any:
        # The second submit runs whole while the first is between loading and saving the browser session.
        issued = issue_api_key(**kwargs)
        if kwargs["name"] == "first":
            second_tab.post("/admin/keys/new/", {"tenant": world.acme.tenant.pk, "name": "second"})
        return issued

    monkeypatch.setattr(admin_pages, "issue_api_key", issue_while_the_other_tab_submits)
    first_tab.post("/admin/keys/new/", {"tenant": world.acme.tenant.pk, "name": "first"})

    for name, tab in (("first", first_tab), ("second", second_tab)):
        api_key = ApiKey.objects.get(name=name)
        raw_key = _shown_key(tab.get(f"/admin/keys/{api_key.pk}/created/").content.decode())
        assert raw_key is not None, name
        assert _whoami(raw_key) == 200
        assert _shown_key(tab.get(f"/admin/keys/{api_key.pk}/created/").content.decode()) is None


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "k"}, "Choose a tenant or name a new one."),
        ({"name": "k", "tenant": "ACME", "new_tenant": "initech"}, "not both"),
        ({"name": "k", "new_tenant": "no spaces allowed"}, "A tenant name is 1-100 letters"),
        ({"name": "k", "new_tenant": "x" * 101}, "at most 100 characters"),
        ({"name": "", "tenant": "ACME"}, "This field is required"),
        ({"name": "nul\x00", "tenant": "ACME"}, "Null characters are not allowed"),
        ({"name": "k", "tenant": "00000000-0000-0000-0000-000000000000"}, "Select a valid choice"),
        ({"name": "k", "tenant": "not-a-uuid"}, "is not a valid UUID"),
    ],
)
def test_bad_create_input_is_explained_and_creates_nothing(world: World, form: dict[str, str], message: str) -> None:
    if form.get("tenant") == "ACME":
        form = {**form, "tenant": str(world.acme.tenant.pk)}
    before = ApiKey.objects.count(), Tenant.objects.count()

    response = logged_in(world.admin).post("/admin/keys/new/", form)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert (ApiKey.objects.count(), Tenant.objects.count()) == before


def test_a_key_is_not_created_when_it_could_not_be_shown(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    from memory_admin.dashboard import admin_pages

    def unreachable() -> object:
        raise redis.ConnectionError("down for the test")

    monkeypatch.setattr(admin_pages, "redis_client", unreachable)

    response = logged_in(world.admin).post("/admin/keys/new/", {"tenant": world.acme.tenant.pk, "name": "lost"})

    assert response.status_code == 200
    assert "no key was created" in response.content.decode()
    assert not ApiKey.objects.filter(name="lost").exists()


# --- revoking --------------------------------------------------------------------------------------------


def test_revoking_needs_a_post_with_the_csrf_token(world: World) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world.admin)
    path = f"/admin/keys/{world.acme.api_key.pk}/revoke/"

    assert strict.post(path).status_code == 403
    assert _whoami(world.acme.raw_key) == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', strict.get(path).content.decode())
    assert token is not None
    assert strict.post(path, {"csrfmiddlewaretoken": token.group(1)}).status_code == 302
    assert _whoami(world.acme.raw_key) == 401


def test_revoking_an_already_revoked_key_changes_nothing(world: World) -> None:
    revoked = revoke_api_key(api_key_id=world.acme.api_key.pk)
    client = logged_in(world.admin)

    confirm = client.get(f"/admin/keys/{revoked.pk}/revoke/").content.decode()
    again = client.post(f"/admin/keys/{revoked.pk}/revoke/", follow=True).content.decode()

    assert "Already revoked" in confirm and 'id="revoke-form"' not in confirm
    assert "was already revoked" in again
    assert ApiKey.objects.get(pk=revoked.pk).revoked_at == revoked.revoked_at


@pytest.mark.parametrize("pk", ["999999", "99999999999999999999999", "not-a-number"])
def test_an_unknown_key_is_a_404(world: World, pk: str) -> None:
    client = logged_in(world.admin)

    for path in (f"/admin/keys/{pk}/revoke/", f"/admin/keys/{pk}/created/"):
        assert client.get(path).status_code == 404
    assert client.post(f"/admin/keys/{pk}/revoke/").status_code == 404


# --- tenants ---------------------------------------------------------------------------------------------


def test_the_tenants_list_counts_keys_sessions_profiles_and_memories(world: World) -> None:
    issue_api_key(tenant=world.acme.tenant, name="second")
    revoke_api_key(api_key_id=world.acme.api_key.pk)
    for index in range(3):
        create_session(tenant=world.acme.tenant, user_id="alice", session_id=f"s{index}")
    create_memory(tenant=world.acme.tenant, item=NewMemory(scope="user", user_id="alice", content="likes tea"))
    create_memory(tenant=world.acme.tenant, item=NewMemory(scope="global", content="open nine to five"))

    client = logged_in(world.admin)

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/tenants/")

    rows = {t.name: t for t in response.context["tenants"]}
    acme, globex = rows["acme"], rows["globex"]
    assert (acme.active_key_count, acme.revoked_key_count, acme.session_count) == (1, 1, 3)
    assert (acme.profile_count, acme.memory_count) == (0, 2)
    assert (globex.active_key_count, globex.revoked_key_count) == (1, 0)
    assert (globex.session_count, globex.memory_count) == (0, 0)
    assert len(queries) <= 6


# --- roles -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["support", "compliance", "nobody"])
def test_admin_pages_are_403_for_every_other_role(world: World, role: str) -> None:
    client = logged_in(getattr(world, role))
    key = world.acme.api_key.pk

    for path in [*ADMIN_PAGES, f"/admin/keys/{key}/revoke/", f"/admin/keys/{key}/created/"]:
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Not allowed" in response.content.decode()
    assert client.post(f"/admin/keys/{key}/revoke/").status_code == 403
    assert client.post("/admin/keys/new/", {"tenant": world.acme.tenant.pk, "name": "x"}).status_code == 403
    assert _whoami(world.acme.raw_key) == 200
    assert ApiKey.objects.count() == 2


def test_admin_navigation_is_shown_to_admins_only(world: World) -> None:
    admin_page = logged_in(world.admin).get("/").content.decode()
    support_page = logged_in(world.support).get("/").content.decode()

    assert 'href="/admin/keys/"' in admin_page and 'href="/admin/tenants/"' in admin_page
    assert 'href="/admin/' not in support_page
    assert 'href="/users/"' in support_page


@pytest.mark.parametrize("role", ["support", "compliance"])
def test_read_only_roles_see_no_mutation_buttons_on_any_page_they_can_open(world: World, role: str) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="s")
    memory = create_memory(tenant=world.acme.tenant, item=NewMemory(scope="user", user_id="alice", content="tea"))
    client = logged_in(getattr(world, role))
    pages = [
        "/",
        "/sessions/",
        f"/sessions/{session.pk}/",
        f"/sessions/{session.pk}/checkpoints/",
        "/users/",
        f"/users/{world.acme.tenant.pk}/alice/",
        f"/users/{world.acme.tenant.pk}/alice/?q=tea",
        f"/memories/{memory.pk}/",
    ]

    for path in pages:
        page = client.get(path).content.decode()
        forms = re.findall(r"<form[^>]*>", page)
        posting = [form for form in forms if 'method="post"' in form and 'action="/logout/"' not in form]
        assert posting == [], (path, posting)
        assert "/admin/" not in page and "Revoke" not in page and "Create an API key" not in page, path


def test_anonymous_visitors_are_sent_to_log_in(world: World) -> None:
    for path in ADMIN_PAGES:
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), path
