"""PostgreSQL spells jsonb as text with escapes (a line break as \\n, a tab as \\t, a control character as
\\u0001): the scan's whole-word match still finds the person right after one, where the escape's last letter
looked like part of a longer word."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_app.tests.people import erased
from conftest import World

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("mention", ["visitors:\n{}", "visitors:\t{}", "visitors:\x01{}", "met {} at the desk"])
def test_session_metadata_that_names_the_person_after_an_escaped_character_fails_the_scan(
    world: World, mention: str, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    person = "kate-target"
    assert client.post("/api/v1/sessions", {"id": "s-person", "user_id": person}, format="json").status_code == 201
    named = {"id": "bob-s", "user_id": "bob", "metadata": {"met": mention.format(person)}}
    assert client.post("/api/v1/sessions", named, format="json").status_code == 201

    request = erased(world, person, django_capture_on_commit_callbacks)

    assert request.status == "failed", request.verification
    assert request.verification["findings"]["postgres:sessions_app_agentsession:text"] == 1


def test_a_longer_word_after_an_escaped_character_is_not_the_person(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    person = "kate-target"
    assert client.post("/api/v1/sessions", {"id": "s-person", "user_id": person}, format="json").status_code == 201
    other = {"id": "bob-s", "user_id": "bob", "metadata": {"met": f"visitors:\nx{person}"}}
    assert client.post("/api/v1/sessions", other, format="json").status_code == 201

    request = erased(world, person, django_capture_on_commit_callbacks)

    assert request.status == "verified", request.verification


@pytest.mark.parametrize("person", ["CORP\\jsmith", 'dwayne"rock"j'])
def test_a_person_whose_id_jsonb_spells_with_escapes_is_found_in_metadata_and_store_items(
    world: World, person: str, django_capture_on_commit_callbacks: Any
) -> None:
    # jsonb doubles a backslash and escapes a quote inside the id too: "CORP\\jsmith" is no longer "CORP\jsmith".
    client = world.acme.client
    assert client.post("/api/v1/sessions", {"id": "s-person", "user_id": person}, format="json").status_code == 201
    named = {"id": "bob-s", "user_id": "bob", "metadata": {"met": f"met {person} at the desk"}}
    assert client.post("/api/v1/sessions", named, format="json").status_code == 201
    op = {"op": "put", "namespace": ["tickets"], "key": "t1", "value": {"text": f"escalated by {person} today"}}
    assert client.post("/api/v1/langgraph/store/batch", {"ops": [op]}, format="json").status_code == 200

    request = erased(world, person, django_capture_on_commit_callbacks)

    assert request.status == "failed", request.verification
    findings = request.verification["findings"]
    assert findings["postgres:sessions_app_agentsession:text"] == 1
    assert findings["postgres:langgraph_app_storeitem:text"] == 1
