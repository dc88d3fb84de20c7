"""`manage.py create_api_key --tenant NAME [--name LABEL]`: prints only the key, so scripts can capture it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from memory_admin.errors import ServiceError
from tenants_app.services import get_or_create_tenant, issue_api_key


class Command(BaseCommand):
    help = "Create an agent API key for a tenant (created if needed) and print the key on stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant name; created when it does not exist")
        parser.add_argument("--name", default="agent", help="a label for the key")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = get_or_create_tenant(name=options["tenant"])
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        api_key, raw_key = issue_api_key(tenant=tenant, name=options["name"])
        self.stderr.write(f"API key {api_key.prefix} for tenant {tenant.name}; it is shown only this once.")
        self.stdout.write(raw_key)
