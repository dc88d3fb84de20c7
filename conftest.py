"""Fixtures shared by every test: a small named world of actors, always with an outsider who must be refused.

The suite runs against the real PostgreSQL + pgvector and Redis that `make test` starts (never SQLite, never
a fake Redis); `make test` exports their URLs before pytest imports the settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from rest_framework.test import APIClient

from tenants_app.models import ApiKey, Tenant
from tenants_app.services import issue_api_key
from tests.clients import AgentClient
from tests.factories import StaffFactory, TenantFactory

STAFF_PASSWORD = "correct horse battery"


@dataclass
class Agent:
    """An agent of one tenant: its API key and a client that sends it."""

    tenant: Tenant
    api_key: ApiKey
    raw_key: str
    client: APIClient


@dataclass
class World:
    acme: Agent  # the tenant under test
    outsider: Agent  # another tenant, who must never see acme's data
    support: User
    compliance: User
    admin: User
    nobody: User  # can log in, holds no staff role


def make_agent(tenant_name: str) -> Agent:
    tenant = TenantFactory.create(name=tenant_name)
    api_key, raw_key = issue_api_key(tenant=tenant, name=f"{tenant_name} agent")
    client = AgentClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return Agent(tenant=tenant, api_key=api_key, raw_key=raw_key, client=client)


@pytest.fixture
def world(db: None) -> World:
    return World(
        acme=make_agent("acme"),
        outsider=make_agent("globex"),
        support=StaffFactory.create(username="sam-support", role="support"),
        compliance=StaffFactory.create(username="cora-compliance", role="compliance"),
        admin=StaffFactory.create(username="ada-admin", role="admin"),
        nobody=StaffFactory.create(username="ned-nobody"),
    )


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def superuser_client(db: None) -> Client:
    """A browser logged in as a superuser (the Django admin's pages)."""
    user = User.objects.create_superuser("root", "root@example.invalid", "pw-not-used")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing() -> Iterator[None]:
    """Production hashes passwords slowly on purpose; tests log in hundreds of times and need no such cost."""
    override = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    override.enable()
    yield
    override.disable()


@pytest.fixture(autouse=True)
def _clean_redis() -> None:
    """Each test starts with an empty Redis, as after a flush: Redis is a cache, so nothing may depend on it.

    The process's copies of the Redis lifetimes go too: a policy is a row of the test's own database.
    """
    from lifecycle_app import lifetimes
    from memory_admin.health import redis_client

    redis_client().flushdb()
    lifetimes.forget()


@pytest.fixture(autouse=True)
def _celery_app_stays_the_services() -> Iterator[None]:
    """The service's tasks (`shared_task`) publish through Celery's current app. A test that makes its own app
    current (`Celery(...)` does unless `set_as_current=False`) would send every later test's tasks to that
    app's broker, gone by then: each publish then retried for a minute and a half before giving up."""
    from celery import current_app

    yield
    assert current_app.main == "memory_admin", f"this test left Celery app {current_app.main!r} as the current one"


@pytest.fixture
def unused_tcp_port() -> int:
    """A loopback port nothing listens on."""
    from memory_admin.embedded import free_port

    return free_port()
