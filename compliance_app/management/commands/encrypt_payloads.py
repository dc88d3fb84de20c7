"""`manage.py encrypt_payloads`: encrypt payloads written before per-person encryption with their person's key.

Batched, resumable and idempotent (see compliance_app.legacy): run it once after upgrading, again after an
interruption; `--dry-run` counts what it would rewrite.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from compliance_app.legacy import TABLES, encrypt_table, legacy_counts


class Command(BaseCommand):
    help = "Encrypt legacy (unencrypted) event, snapshot, operation and checkpoint payloads per person."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=1000, help="rows per transaction (default 1000)")
        parser.add_argument("--table", choices=list(TABLES), action="append", help="only these tables")
        parser.add_argument("--dry-run", action="store_true", help="count what would be rewritten, change nothing")

    def handle(self, *args: Any, batch: int, table: list[str] | None, dry_run: bool, **options: Any) -> None:
        if batch < 1:
            self.stderr.write("--batch must be at least 1")
            raise SystemExit(2)
        verbosity = int(options.get("verbosity", 1))

        def report(name: str, done: int) -> None:
            if verbosity > 1:
                self.stdout.write(f"  {name}: {done} rows")

        for name in table or list(TABLES):
            rewritten = encrypt_table(name, batch=batch, dry_run=dry_run, report=report)
            self.stdout.write(f"{name}: {rewritten} {'to encrypt' if dry_run else 'encrypted'}")
        if not dry_run:
            left = {name: count for name, count in legacy_counts().items() if count}
            self.stdout.write("no unencrypted payloads left" if not left else f"still unencrypted: {left}")
