"""`manage.py seed_demo --credentials-file PATH`: demo tenant, staff logins and an agent key, created once.

The key and passwords are random; they are kept in the credentials file (under var/, never committed) so
that every `make run` can print them again, since the database keeps only hashes. A password is set only for
the user the command creates: one changed since stays, and the file says so (`changed`).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from sessions_app.models import EventType, OperationStatus
from sessions_app.services import (
    NewEvent,
    append_events,
    append_messages,
    create_session,
    finish_operation,
    record_operation,
)
from tenants_app.models import Tenant
from tenants_app.roles import Role
from tenants_app.selectors import active_key_for
from tenants_app.services import ensure_role_groups, get_or_create_tenant, issue_api_key

DEMO_TENANT = "demo"


DEMO_CONVERSATIONS = [
    (
        "trip-planner-1",
        "traveller-ada",
        [
            ("user", "I want to visit Lisbon in May for four days."),
            ("assistant", "Lovely time to go. Do you prefer museums, food or walking tours?"),
            ("user", "Food first, then a bit of history."),
        ],
    ),
    (
        "support-bot-7",
        "customer-grace",
        [
            ("user", "My invoice for October is missing."),
            ("assistant", "I found invoice INV-1042 for October; I will resend it to your email."),
        ],
    ),
    ("research-42", "analyst-linus", [("user", "Summarise last quarter's churn drivers.")]),
]


def seed_sessions(tenant: Tenant) -> None:
    """A few sessions with dialogue, tool calls, node transitions, state patches and journal entries."""
    for session_id, user_id, turns in DEMO_CONVERSATIONS:
        session, _ = create_session(tenant=tenant, user_id=user_id, session_id=session_id, metadata={"demo": True})
        append_events(session=session, events=[NewEvent(EventType.NODE_TRANSITION, {"node": "understand"})])
        append_messages(session=session, messages=[{"role": role, "content": text} for role, text in turns])
        append_events(
            session=session,
            events=[
                NewEvent(EventType.NODE_TRANSITION, {"node": "act"}),
                NewEvent(EventType.TOOL_EXECUTED, {"tool": "search", "result": {"hits": len(turns) * 3}}),
                NewEvent(
                    EventType.STATE_PATCHED,
                    {"patch": [{"op": "add", "path": "/topic", "value": turns[0][1][:40]}]},
                ),
            ],
        )
        done, _ = record_operation(session=session, name="send_email", key=f"{session_id}-email", params={"to": "user"})
        finish_operation(session=session, operation_id=done.pk, status=OperationStatus.COMPLETED, outcome={"ok": True})
        record_operation(session=session, name="charge_card", key=f"{session_id}-charge", params={"amount": 12})


class Command(BaseCommand):
    help = "Create the demo tenant, staff users (support, compliance, admin) and an agent API key, once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--credentials-file", required=True, type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["credentials_file"]
        credentials = self._load(path)
        with transaction.atomic():
            ensure_role_groups()
            tenant = get_or_create_tenant(name=DEMO_TENANT)
            staff = credentials.get("staff", {})
            for role in Role:
                login = staff.get(role.value) or {"username": role.value, "password": secrets.token_urlsafe(9)}
                user, created = User.objects.get_or_create(username=login["username"])
                if created:
                    user.set_password(login["password"])
                    user.save()
                # A password changed since (on the admin, with `changepassword`) is its user's: never put back,
                # and no longer the one `make run` prints.
                login["changed"] = not user.check_password(login["password"])
                user.groups.add(Group.objects.get(name=role.value))
                staff[role.value] = login
            api_key = credentials.get("api_key")
            if not api_key or active_key_for(api_key) is None:
                _, api_key = issue_api_key(tenant=tenant, name="demo agent")
            if not tenant.sessions.exists():
                seed_sessions(tenant)
        credentials.update({"tenant": tenant.name, "staff": staff, "api_key": api_key})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(credentials, indent=2))
        path.chmod(0o600)

    def _load(self, path: Path) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads(path.read_text())
            return loaded
        except (OSError, ValueError):
            return {}
