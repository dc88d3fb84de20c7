"""Agent API keys: created per tenant, stored hashed, shown once, revocable, with a last-used time."""

from __future__ import annotations

import json
import time
from io import StringIO
from typing import Any

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import World
from memory_admin.errors import Unavailable
from memory_admin.health import redis_client
from memory_admin.live import channel_name, tenant_group
from tenants_app import keycache
from tenants_app.models import ApiKey, Tenant
from tenants_app.services import revoke_api_key
from tests.clients import AgentClient

pytestmark = pytest.mark.django_db


def _client(raw_key: str) -> APIClient:
    client = AgentClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def test_create_api_key_command_creates_the_tenant_and_prints_only_the_key() -> None:
    out, err = StringIO(), StringIO()
    call_command("create_api_key", "--tenant", "Initech", stdout=out, stderr=err)

    raw_key = out.getvalue().strip()
    assert raw_key.startswith("mk_") and "\n" not in raw_key
    assert Tenant.objects.filter(name="initech").exists()
    assert _client(raw_key).get("/api/v1/whoami").json() == {
        "tenant": "initech",
        "key_prefix": raw_key.split("_")[1],
    }


def test_create_api_key_command_rejects_a_malformed_tenant_name() -> None:
    with pytest.raises(CommandError, match="tenant name"):
        call_command("create_api_key", "--tenant", "no spaces allowed", stdout=StringIO(), stderr=StringIO())
    assert not Tenant.objects.exists()


def test_the_key_itself_is_never_stored(world: World) -> None:
    with connection.cursor() as cursor:
        cursor.execute("select prefix, key_hash from tenants_app_apikey")
        rows = cursor.fetchall()
    secret_part = world.acme.raw_key.split("_", 2)[2]
    assert rows and all(secret_part not in prefix + key_hash for prefix, key_hash in rows)


def test_a_revoked_key_is_refused_at_once(world: World) -> None:
    assert world.acme.client.get("/api/v1/whoami").status_code == 200

    revoke_api_key(api_key_id=world.acme.api_key.pk)

    response = world.acme.client.get("/api/v1/whoami")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_a_key_with_a_right_prefix_and_wrong_secret_is_refused(world: World) -> None:
    prefix = world.acme.raw_key.split("_")[1]
    response = _client(f"mk_{prefix}_not-the-secret").get("/api/v1/whoami")
    assert response.status_code == 401


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-key", "Bearer mk__", "Token mk_a_b"],
)
def test_missing_or_malformed_credentials_get_401_in_the_error_shape(world: World, header: str) -> None:
    client = AgentClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/whoami")
    assert response.status_code == 401
    body = response.json()
    assert set(body["error"]) == {"status", "code", "message", "details", "request_id"}
    assert body["error"]["status"] == 401


def test_the_x_api_key_header_is_accepted_too(world: World) -> None:
    response = AgentClient().get("/api/v1/whoami", HTTP_X_API_KEY=world.acme.raw_key)
    assert response.json()["tenant"] == "acme"


def test_each_key_speaks_for_its_own_tenant_only(world: World) -> None:
    assert world.acme.client.get("/api/v1/whoami").json()["tenant"] == "acme"
    assert world.outsider.client.get("/api/v1/whoami").json()["tenant"] == "globex"


def test_last_used_time_is_recorded(world: World) -> None:
    assert world.acme.api_key.last_used_at is None
    world.acme.client.get("/api/v1/whoami")
    assert ApiKey.objects.get(pk=world.acme.api_key.pk).last_used_at is not None


def test_a_key_revoked_by_another_process_is_refused_on_the_next_request(world: World) -> None:
    """Each process caches verified keys; a revocation elsewhere replaces the shared epoch in Redis."""
    assert world.acme.client.get("/api/v1/whoami").status_code == 200  # now cached in this process
    ApiKey.objects.filter(pk=world.acme.api_key.pk).update(revoked_at=timezone.now())  # as another node would
    assert world.acme.client.get("/api/v1/whoami").status_code == 200  # this process has not heard yet

    redis_client().set(keycache.EPOCH_KEY, "replaced-by-the-revoking-node")

    assert world.acme.client.get("/api/v1/whoami").status_code == 401


def test_a_redis_flush_drops_every_cached_key(world: World) -> None:
    assert world.acme.client.get("/api/v1/whoami").status_code == 200
    ApiKey.objects.filter(pk=world.acme.api_key.pk).update(revoked_at=timezone.now())

    redis_client().flushall()

    assert world.acme.client.get("/api/v1/whoami").status_code == 401


def test_keys_made_or_revoked_outside_the_dashboard_tell_the_admins_open_key_lists(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    pubsub = redis_client().pubsub()
    pubsub.subscribe(channel_name(tenant_group(world.acme.tenant.pk)))
    pubsub.get_message(timeout=1)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("create_api_key", "--tenant", "acme", "--name", "cli", stdout=StringIO(), stderr=StringIO())
    made = ApiKey.objects.get(tenant=world.acme.tenant, name="cli")
    with django_capture_on_commit_callbacks(execute=True):
        revoke_api_key(api_key_id=made.pk)
        revoke_api_key(api_key_id=made.pk)  # already revoked: nothing more to tell

    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while len(received) < 3 and time.monotonic() < deadline:
        item = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if item:
            received.append(json.loads(item["data"]))
    assert [(m["type"], m["key"]) for m in received] == [("api_key.created", made.pk), ("api_key.revoked", made.pk)]
    assert all(m["tenant"] == str(world.acme.tenant.pk) for m in received)


def _django_admin() -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("root-admin", "root@example.com", "a long enough password")
    client = Client()
    client.force_login(user)
    return client


def test_a_key_revoked_or_deleted_in_the_django_admin_is_refused_at_once_everywhere(world: World) -> None:
    # The admin let `revoked_at` be edited and keys be deleted without telling the processes that cached them.
    assert world.acme.client.get("/api/v1/whoami").status_code == 200  # cached in this process
    admin = _django_admin()
    changelist = "/django-admin/tenants_app/apikey/"

    answer = admin.post(changelist, {"action": "revoke_keys", "_selected_action": [world.acme.api_key.pk]})

    assert answer.status_code == 302
    assert ApiKey.objects.get(pk=world.acme.api_key.pk).revoked_at is not None
    assert world.acme.client.get("/api/v1/whoami").status_code == 401
    assert world.outsider.client.get("/api/v1/whoami").status_code == 200  # cached again
    deleted = admin.post(f"{changelist}{world.outsider.api_key.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not ApiKey.objects.filter(pk=world.outsider.api_key.pk).exists()
    assert world.outsider.client.get("/api/v1/whoami").status_code == 401


def test_the_django_admin_shows_when_a_key_was_revoked_but_cannot_edit_it(world: World) -> None:
    page = _django_admin().get(f"/django-admin/tenants_app/apikey/{world.acme.api_key.pk}/change/")

    assert page.status_code == 200
    assert b'name="revoked_at' not in page.content


UNREACHABLE_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
}


def test_a_revocation_that_cannot_reach_redis_is_refused_and_changes_nothing(world: World) -> None:
    # Stored but untold, the key would have gone on working in every process that cached it.
    with override_settings(CACHES=UNREACHABLE_REDIS), pytest.raises(Unavailable):
        revoke_api_key(api_key_id=world.acme.api_key.pk)

    assert ApiKey.objects.get(pk=world.acme.api_key.pk).revoked_at is None


@pytest.mark.parametrize("kind", ["apikey", "tenant"])
def test_a_key_or_tenant_deletion_in_the_django_admin_that_cannot_reach_redis_is_refused_and_deletes_nothing(
    world: World, kind: str
) -> None:
    # Deleted but untold, a key (a deleted tenant's too) went on working for a minute in every process that had
    # it cached.
    admin = _django_admin()
    changelist = f"/django-admin/tenants_app/{kind}/"
    first, second = (
        (world.acme.api_key.pk, world.outsider.api_key.pk)
        if kind == "apikey"
        else (world.acme.tenant.pk, world.outsider.tenant.pk)
    )
    with override_settings(CACHES=UNREACHABLE_REDIS):
        one = admin.post(f"{changelist}{first}/delete/", {"post": "yes"}, follow=True)
        many = admin.post(
            changelist, {"action": "delete_selected", "post": "yes", "_selected_action": [second]}, follow=True
        )

    for answer in (one, many):
        assert answer.status_code == 200
        assert "Nothing was changed: Redis cannot be reached" in answer.content.decode()
    # Django logs a bulk deletion before it deletes: the refused one leaves no entry claiming it happened.
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()
    assert Tenant.objects.filter(pk__in=[world.acme.tenant.pk, world.outsider.tenant.pk]).count() == 2
    assert ApiKey.objects.filter(pk__in=[world.acme.api_key.pk, world.outsider.api_key.pk]).count() == 2
