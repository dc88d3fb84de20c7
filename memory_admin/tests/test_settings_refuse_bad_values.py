"""Values that used to pass start-up and misbehave later: an empty flag that switched a safeguard off, an empty
host list, non-finite numbers, malformed Redis and Postgres ports, malformed archive storage options."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from memory_admin.env import check_redis_url, env_bool, env_float, env_list, parse_database_url

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-real-secret-of-enough-length-0123456789abcdef"


def _settings(expression: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SECRET_KEY": SECRET, **overrides}
    env.pop("SECRET_KEY_FILE", None)
    code = f"import django; django.setup(); from django.conf import settings; print(repr({expression}))"
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("default", [True, False])
def test_an_empty_boolean_means_its_default(monkeypatch: pytest.MonkeyPatch, default: bool) -> None:
    monkeypatch.setenv("FLAG", "")
    assert env_bool("FLAG", default) is default


def test_an_empty_erasure_four_eyes_keeps_four_eyes_approval_on() -> None:
    result = _settings("settings.ERASURE_FOUR_EYES", ERASURE_FOUR_EYES="")
    assert result.stdout.strip() == "True", result.stderr


def test_an_empty_allowed_hosts_means_the_default_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    for empty in ("", " , "):
        monkeypatch.setenv("HOSTS", empty)
        assert env_list("HOSTS", ["localhost"], empty_means_default=True) == ["localhost"]
    result = _settings("settings.ALLOWED_HOSTS", ALLOWED_HOSTS="")
    assert result.stdout.strip() == "['localhost', '127.0.0.1', '[::1]']", result.stderr


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "NaN"])
def test_a_number_that_is_not_finite_is_refused_with_the_variables_name(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("REDIS_SOCKET_TIMEOUT_SECONDS", raw)
    with pytest.raises(ImproperlyConfigured, match=r"REDIS_SOCKET_TIMEOUT_SECONDS=.* is not a finite number"):
        env_float("REDIS_SOCKET_TIMEOUT_SECONDS", 1.0, minimum=0.05, maximum=60)


def test_a_nan_redis_timeout_stops_the_settings_from_loading() -> None:
    result = _settings("settings.REDIS_SOCKET_TIMEOUT_SECONDS", REDIS_SOCKET_TIMEOUT_SECONDS="nan")
    assert result.returncode != 0
    assert "REDIS_SOCKET_TIMEOUT_SECONDS='nan' is not a finite number" in result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:abc/0", "invalid port"),
        ("redis://127.0.0.1:99999/0", "invalid port"),
        ("redis://127.0.0.1:0/0", "port 0"),
        ("redis://127.0.0.1:6379/notadb", "databases are numbers"),
        ("redis://127.0.0.1:6379/²", "databases are numbers"),  # a digit to str.isdigit(), not to int()
        ("redis://", "names no host"),
        ("unix:///run/redis.sock?db=x", "databases are numbers"),  # (was refused only at the first connection)
        ("unix://", "names no socket"),
    ],
)
def test_a_malformed_redis_url_is_refused(url: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        check_redis_url("REDIS_URL", url)


def test_well_formed_redis_urls_pass() -> None:
    for url in (
        "redis://127.0.0.1:6379/0",
        "redis://:pw@cache",
        "rediss://cache:6380/2",
        "unix:///run/redis.sock?db=3",
    ):
        assert check_redis_url("REDIS_URL", url) == url


def test_a_database_url_with_port_0_is_refused_instead_of_becoming_5432() -> None:
    with pytest.raises(ImproperlyConfigured, match="port 0"):
        parse_database_url("DATABASE_URL", "postgres://127.0.0.1:0/memory")
    assert parse_database_url("DATABASE_URL", "postgres://127.0.0.1/memory").port == 5432


def test_a_url_with_an_unclosed_ipv6_bracket_is_refused_naming_the_variable_and_not_the_password() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^DATABASE_URL is not a valid URL") as database:
        parse_database_url("DATABASE_URL", "postgres://memory:s3cret@[::1/memory")
    with pytest.raises(ImproperlyConfigured, match=r"^REDIS_URL is not a valid URL") as cache:
        check_redis_url("REDIS_URL", "redis://:s3cret@[::1:6379/0")
    assert "s3cret" not in str(database.value) + str(cache.value)


def test_malformed_archive_storage_options_stop_the_settings_from_loading() -> None:
    result = _settings(
        "settings.ARCHIVE_STORAGE_OPTIONS",
        ARCHIVE_STORAGE_BACKEND="storages.backends.s3.S3Storage",
        ARCHIVE_STORAGE_OPTIONS='{"bucket_name": "archive",',
    )
    assert result.returncode != 0
    assert "ARCHIVE_STORAGE_OPTIONS is not valid JSON" in result.stderr
    assert "bucket_name" not in result.stderr.splitlines()[-1]
    listed = _settings("settings.ARCHIVE_STORAGE_OPTIONS", ARCHIVE_STORAGE_OPTIONS='["not", "an object"]')
    assert "ARCHIVE_STORAGE_OPTIONS must be a JSON object" in listed.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"EMBEDDING_PROVIDER": "openai"}, "EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY"),
        (
            {"EMBEDDING_PROVIDER": "local", "EMBEDDING_DIMENSIONS": "100"},
            "EMBEDDING_DIMENSIONS=100: the local model makes 384-dimension vectors",
        ),
        # (sentence-transformers is not among the requirements: every memory write was a 503.)
        ({"EMBEDDING_PROVIDER": "local"}, "EMBEDDING_PROVIDER=local: the local embedding model is not installed"),
        (
            {"ARCHIVE_STORAGE_BACKEND": "storages.backends.s3.S3Storag"},
            "ARCHIVE_STORAGE_BACKEND='storages.backends.s3.S3Storag' cannot be imported",
        ),
    ],
)
def test_an_embedder_or_archive_storage_that_cannot_work_stops_the_start_up(
    overrides: dict[str, str], message: str
) -> None:
    # These passed start-up and /readyz; every memory write was then a 500 (the archive: the first job, hours later).
    result = _settings("settings.EMBEDDING_PROVIDER", OPENAI_API_KEY="", **overrides)
    assert result.returncode != 0
    assert message in result.stderr.splitlines()[-1]


def test_a_working_embedder_and_archive_storage_start() -> None:
    result = _settings(
        "settings.EMBEDDING_PROVIDER",
        EMBEDDING_PROVIDER="openai",
        OPENAI_API_KEY="sk-test",
        ARCHIVE_STORAGE_BACKEND="storages.backends.s3.S3Storage",
        ARCHIVE_STORAGE_OPTIONS='{"bucket_name": "archive"}',
    )
    assert result.stdout.strip() == "'openai'", result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SESSION_ARCHIVE_AFTER_DAYS", "1000000", "SESSION_ARCHIVE_AFTER_DAYS=1000000 is above the maximum 36500"),
        ("EVENT_RETENTION_DAYS", "36501", "EVENT_RETENTION_DAYS=36501 is above the maximum 36500"),
        ("CHECKPOINT_RETENTION_DAYS", "1000000", "CHECKPOINT_RETENTION_DAYS=1000000 is above the maximum 36500"),
        ("CHECKPOINT_KEEP_LATEST", "10001", "CHECKPOINT_KEEP_LATEST=10001 is above the maximum 10000"),
        ("MEMORY_EVICTION_GRACE_DAYS", "3651", "MEMORY_EVICTION_GRACE_DAYS=3651 is above the maximum 3650"),
        ("MEMORY_EVICTION_THRESHOLD", "1e300", "MEMORY_EVICTION_THRESHOLD=1e+300 is above the maximum 100.0"),
        ("MEMORY_PURGE_AFTER_HOURS", "100000000", "MEMORY_PURGE_AFTER_HOURS=100000000 is above the maximum 876000"),
        ("OUTBOX_KEEP_PROCESSED_DAYS", "1000000", "OUTBOX_KEEP_PROCESSED_DAYS=1000000 is above the maximum 36500"),
        ("LIFECYCLE_JOB_RUNS_KEEP_DAYS", "1000000", "LIFECYCLE_JOB_RUNS_KEEP_DAYS=1000000 is above the maximum 36500"),
        # Redis refused such a lifetime: every keyed retry was a 409, every context read fell back to Postgres.
        ("IDEMPOTENCY_TTL_SECONDS", "2592001", "IDEMPOTENCY_TTL_SECONDS=2592001 is above the maximum 2592000"),
        ("CONTEXT_TTL_SECONDS", "100000000000000000", "is above the maximum 2592000"),
        ("TOOL_STATE_TTL_SECONDS", "2592001", "TOOL_STATE_TTL_SECONDS=2592001 is above the maximum 2592000"),
    ],
)
def test_a_retention_default_beyond_what_a_policy_may_hold_stops_the_start_up(
    name: str, value: str, message: str
) -> None:
    # SESSION_ARCHIVE_AFTER_DAYS=1000000 passed start-up; every lifecycle run then failed computing its cutoff.
    result = _settings(f"settings.{name}", **{name: value})
    assert result.returncode != 0
    assert message in result.stderr.splitlines()[-1]


def test_a_retention_default_at_the_policies_limit_starts() -> None:
    result = _settings("settings.SESSION_ARCHIVE_AFTER_DAYS", SESSION_ARCHIVE_AFTER_DAYS="36500")
    assert result.stdout.strip() == "36500", result.stderr
