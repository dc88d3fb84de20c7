"""Settings come from typed environment readers that fail loudly, and production refuses a default secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from memory_admin.env import env_bool, env_int, env_list, env_secret, parse_database_url

ROOT = Path(__file__).resolve().parents[2]


def test_booleans_accept_the_usual_spellings(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, expected in [("1", True), ("yes", True), ("ON", True), ("0", False), ("off", False)]:
        monkeypatch.setenv("FLAG", raw)
        assert env_bool("FLAG", not expected) is expected


def test_a_malformed_boolean_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG='maybe' is not a boolean"):
        env_bool("FLAG", False)


def test_integers_are_range_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIZE", "0")
    with pytest.raises(ImproperlyConfigured, match="below the minimum 1"):
        env_int("SIZE", 5, minimum=1)
    monkeypatch.setenv("SIZE", "ten")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("SIZE", 5)


def test_lists_split_on_commas_and_drop_blanks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTS", "a.example, b.example,,")
    assert env_list("HOSTS", []) == ["a.example", "b.example"]


def test_a_secret_can_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-from-file\n")
    monkeypatch.delenv("TOKEN", raising=False)
    monkeypatch.setenv("TOKEN_FILE", str(secret))
    assert env_secret("TOKEN") == "s3cret-from-file"


def test_a_secret_set_twice_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOKEN", "direct")
    monkeypatch.setenv("TOKEN_FILE", str(tmp_path / "whatever"))
    with pytest.raises(ImproperlyConfigured, match="either TOKEN or TOKEN_FILE"):
        env_secret("TOKEN")


def test_database_urls_are_parsed_into_parts() -> None:
    parsed = parse_database_url("DATABASE_URL", "postgres://app:p%40ss@db.internal:6543/memory?sslmode=require")
    assert (parsed.host, parsed.port, parsed.name, parsed.user, parsed.password) == (
        "db.internal",
        6543,
        "memory",
        "app",
        "p@ss",
    )
    assert parsed.options == {"sslmode": "require"}


def test_a_database_url_of_another_kind_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="must be a postgres:// URL"):
        parse_database_url("DATABASE_URL", "mysql://localhost/memory")


def _import_settings(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "SECRET_KEY_FILE", "DEBUG"}}
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "-c", "import memory_admin.settings"], env=env, cwd=ROOT, capture_output=True, text=True
    )


def test_production_refuses_to_start_without_a_secret() -> None:
    result = _import_settings()
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set" in result.stderr


def test_production_refuses_a_default_secret() -> None:
    result = _import_settings(SECRET_KEY="django-insecure-abcdefghijklmnopqrstuvwxyz0123456789")
    assert result.returncode != 0
    assert "refusing to start" in result.stderr


def test_production_starts_with_a_real_secret() -> None:
    result = _import_settings(SECRET_KEY="a-real-secret-of-enough-length-0123456789abcdef")
    assert result.returncode == 0, result.stderr


def test_a_missing_database_url_says_how_to_get_one() -> None:
    result = _import_settings(SECRET_KEY="a-real-secret-of-enough-length-0123456789abcdef", DATABASE_URL=None)
    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr


@pytest.mark.parametrize("templates", ["users.alice", "users.{user_id}.{user_id}", "users..{user_id}", "{user}"])
def test_a_store_namespace_for_erasure_without_exactly_one_user_id_label_is_refused(templates: str) -> None:
    result = _import_settings(
        SECRET_KEY="a-real-secret-of-enough-length-0123456789abcdef", ERASURE_STORE_NAMESPACES=templates
    )
    assert result.returncode != 0
    assert "ERASURE_STORE_NAMESPACES" in result.stderr


@pytest.mark.django_db
def test_a_database_url_with_its_host_and_port_in_the_query_connects_there() -> None:
    # libpq's form for a Unix socket's directory (postgres:///db?host=/run/postgresql): the query's host and
    # port lost to the defaults, localhost:5432, and the service connected somewhere else or nowhere.
    from django.db import connection

    params = connection.settings_dict
    url = f"postgres:///postgres?host={params['HOST']}&port={params['PORT']}&user={params['USER']}&sslmode=disable"
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "a-real-secret-of-enough-length-0123456789abcdef"}
    env.pop("SECRET_KEY_FILE", None)
    code = (
        "import django; django.setup()\n"
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('select inet_server_port()')\n"
        "    print(cursor.fetchone()[0], connection.settings_dict['OPTIONS']['sslmode'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)

    assert result.stdout.split() == [str(params["PORT"]), "disable"], result.stderr
    parsed = parse_database_url("DATABASE_URL", "postgresql:///memory?host=/run/postgresql")
    assert (parsed.host, parsed.port, parsed.name, parsed.options) == ("/run/postgresql", 5432, "memory", {})
