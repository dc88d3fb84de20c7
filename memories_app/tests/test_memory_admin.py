"""The Django admin shows memories, jobs, profiles and the outbox read-only, and its lists carry no personal data."""

from __future__ import annotations

import pytest
from django.test import Client

from memories_app.models import Memory, UserProfile
from memories_app.profiles import update_profile
from memories_app.services import NewMemory, create_memory

SECRET_TEXT = "Her passport number is 12345."
PERSON = "alice-4711"


@pytest.fixture
def memory(world):
    return create_memory(tenant=world.acme.tenant, item=NewMemory(scope="user", user_id=PERSON, content=SECRET_TEXT))


def test_memory_list_shows_ids_and_states_but_no_text_or_person(superuser_client, memory):
    response = superuser_client.get("/django-admin/memories_app/memory/")

    assert response.status_code == 200
    page = response.content.decode()
    assert str(memory.pk) in page
    assert SECRET_TEXT not in page and PERSON not in page


def test_a_memory_page_shows_its_text_read_only_and_offers_no_save_or_delete(superuser_client, memory):
    response = superuser_client.get(f"/django-admin/memories_app/memory/{memory.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert SECRET_TEXT in page
    assert 'name="_save"' not in page and "/delete/" not in page


def test_the_admin_cannot_add_change_or_delete_a_memory(superuser_client, memory):
    assert superuser_client.get("/django-admin/memories_app/memory/add/").status_code == 403
    superuser_client.post(f"/django-admin/memories_app/memory/{memory.pk}/change/", {"content": "rewritten"})
    assert (
        superuser_client.post(f"/django-admin/memories_app/memory/{memory.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert Memory.objects.get(pk=memory.pk).content == SECRET_TEXT


def test_searching_needs_a_persons_exact_id(superuser_client, memory):
    exact = superuser_client.get("/django-admin/memories_app/memory/", {"q": PERSON}).content.decode()
    partial = superuser_client.get("/django-admin/memories_app/memory/", {"q": "alice"}).content.decode()

    assert str(memory.pk) in exact
    assert str(memory.pk) not in partial


def test_profile_and_outbox_lists_hide_facts_and_people(superuser_client, world):
    update_profile(tenant=world.acme.tenant, user_id=PERSON, expected_versions=None, facts={"id": SECRET_TEXT})
    profile = UserProfile.objects.get(user_id=PERSON)

    for path in ("userprofile", "profilefactoutbox", "promotionjob"):
        response = superuser_client.get(f"/django-admin/memories_app/{path}/")
        assert response.status_code == 200, path
        page = response.content.decode()
        assert SECRET_TEXT not in page and PERSON not in page, path
    detail = superuser_client.get(f"/django-admin/memories_app/userprofile/{profile.pk}/change/").content.decode()
    assert SECRET_TEXT in detail


def test_staff_without_superuser_rights_cannot_open_the_memory_admin(world, memory):
    client = Client()
    client.force_login(world.support)

    response = client.get("/django-admin/memories_app/memory/")

    assert response.status_code in (302, 403)
