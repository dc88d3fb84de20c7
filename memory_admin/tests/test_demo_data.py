"""`manage.py seed_demo`: the demo tenant, staff logins and agent key, created once and reused."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from sessions_app.models import AgentSession, Operation
from tenants_app.models import ApiKey, Tenant
from tenants_app.roles import Role, roles_of
from tests.clients import AgentClient

pytestmark = pytest.mark.django_db


def _seed(path: Path) -> dict[str, object]:
    call_command("seed_demo", "--credentials-file", str(path), stdout=StringIO())
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


def test_seeding_creates_a_login_per_role_and_a_working_agent_key(tmp_path: Path) -> None:
    credentials = _seed(tmp_path / "demo.json")

    staff = credentials["staff"]
    assert isinstance(staff, dict)
    for role in Role:
        login = staff[role.value]
        user = authenticate(username=login["username"], password=login["password"])
        assert user is not None and roles_of(user) == {role}
    client = AgentClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {credentials['api_key']}")
    assert client.get("/api/v1/whoami").json()["tenant"] == "demo"


def test_seeding_again_reuses_everything(tmp_path: Path) -> None:
    first = _seed(tmp_path / "demo.json")
    second = _seed(tmp_path / "demo.json")

    assert first == second
    assert Tenant.objects.filter(name="demo").count() == 1
    assert ApiKey.objects.count() == 1


def test_seeding_fills_the_demo_tenant_with_sessions_events_and_journal_entries(tmp_path: Path) -> None:
    _seed(tmp_path / "demo.json")
    _seed(tmp_path / "demo.json")

    sessions = AgentSession.objects.filter(tenant__name="demo")
    assert sessions.count() == 3
    assert all(session.head_version >= 5 for session in sessions)
    assert Operation.objects.filter(session__in=sessions, status="pending").count() == 3


def test_seeding_again_keeps_a_staff_password_changed_since_and_says_it_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every `make run` seeds: an admin's new password was put back to the demo one at the next start.
    from django.contrib.auth.models import User

    from memory_admin import runner

    path = tmp_path / "demo.json"
    _seed(path)
    admin = User.objects.get(username="admin")
    admin.set_password("Changed-by-the-admin-2026")
    admin.save()

    credentials = _seed(path)
    runner._print_banner("http://127.0.0.1:8000/", path)

    assert authenticate(username="admin", password="Changed-by-the-admin-2026") is not None
    staff = credentials["staff"]
    assert isinstance(staff, dict)
    assert staff["admin"]["changed"] is True and staff["support"]["changed"] is False
    banner = capsys.readouterr().out
    assert "admin / (changed since; `manage.py changepassword admin` sets another)" in banner
    assert f"support / {staff['support']['password']}" in banner
