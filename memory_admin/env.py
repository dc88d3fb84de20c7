"""Typed readers for settings that come from environment variables.

Every reader fails loudly with the variable's name and what was wrong, so a typo in a deployment stops the
process at start-up instead of surfacing as odd behaviour later. Secrets may come from `NAME_FILE` (a path,
as Docker and Kubernetes secrets are mounted) instead of `NAME`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    """An empty value (`FLAG=` in a compose file or an env file) means the default, as for every reader: it
    must not turn off a safeguard that defaults to on (ERASURE_FOUR_EYES)."""
    value = _raw(name)
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use one of 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum {maximum}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise ImproperlyConfigured(f"{name}={value!r} is not a finite number")
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum {maximum}")
    return number


def env_list(name: str, default: list[str], *, empty_means_default: bool = False) -> list[str]:
    """Comma-separated items. An empty value is an empty list (for lists where none is a choice), or the
    default with `empty_means_default` (for lists that must not be empty, such as ALLOWED_HOSTS)."""
    value = _raw(name)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",") if item.strip()]
    return list(default) if not items and empty_means_default else items


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(choices)}")
    return value


def env_secret(name: str) -> str | None:
    """The secret in `NAME`, or the contents of the file named by `NAME_FILE`; None when neither is set."""
    direct = _raw(name)
    path = _raw(f"{name}_FILE")
    if direct and path:
        raise ImproperlyConfigured(f"set either {name} or {name}_FILE, not both")
    if path:
        try:
            secret = Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc.strerror}") from None
        if not secret:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} is empty")
        return secret
    return direct or None


@dataclass(frozen=True)
class DatabaseUrl:
    host: str
    port: int
    name: str
    user: str
    password: str
    options: dict[str, str]


def _split(name: str, value: str) -> SplitResult:
    """urlsplit, with its refusal (an unclosed `[` of an IPv6 host) worded for the variable; the message does not
    quote the URL, which may hold a password."""
    try:
        return urlsplit(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a valid URL ({exc})") from None


def _port(name: str, parts: SplitResult, *, default: int) -> int:
    """The URL's port (`default` when it names none); ImproperlyConfigured for one outside 1-65535."""
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name} has an invalid port (a number from 1 to 65535)") from None
    if port == 0:
        raise ImproperlyConfigured(f"{name} has port 0 (a number from 1 to 65535, or none for {default})")
    return port or default


def parse_database_url(name: str, value: str) -> DatabaseUrl:
    """Parse `postgres://user:password@host:port/dbname?sslmode=require` into its parts.

    As libpq does, `host`, `port`, `user`, `password` and `dbname` may come in the query instead
    (`postgres:///memory?host=/var/run/postgresql`, a Unix socket's directory); there they win.
    """
    parts = _split(name, value)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(f"{name} must be a postgres:// URL, got scheme {parts.scheme!r}")
    options = dict(parse_qsl(parts.query))
    database = options.pop("dbname", "") or unquote(parts.path.lstrip("/"))
    if not database:
        raise ImproperlyConfigured(f"{name} names no database (postgres://user@host:port/DBNAME)")
    port = _port(name, parts, default=5432)
    if "port" in options:
        port = _port(name, urlsplit(f"//localhost:{options.pop('port')}"), default=5432)
    return DatabaseUrl(
        host=options.pop("host", "") or unquote(parts.hostname or "localhost"),
        port=port,
        name=database,
        user=options.pop("user", "") or unquote(parts.username or "postgres"),
        password=options.pop("password", "") or unquote(parts.password or ""),
        options=options,
    )


def check_redis_url(name: str, value: str) -> str:
    """Check what would otherwise fail only at the first connection: the scheme, the host, the port, the db."""
    parts = _split(name, value)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"{name} must be a redis://, rediss:// or unix:// URL, got scheme {parts.scheme!r}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ImproperlyConfigured(f"{name} names no socket (unix:///path/redis.sock?db=0)")
        databases = [number for key, number in parse_qsl(parts.query, keep_blank_values=True) if key == "db"]
        if any(not (number.isascii() and number.isdigit()) for number in databases):
            raise ImproperlyConfigured(f"{name} has database {databases[-1]!r}; Redis databases are numbers (?db=0)")
        return value
    if not parts.hostname:
        raise ImproperlyConfigured(f"{name} names no host (redis://host:6379/0)")
    _port(name, parts, default=6379)
    database = parts.path.strip("/")
    if database and not (database.isascii() and database.isdigit()):
        raise ImproperlyConfigured(f"{name} has database {database!r}; Redis databases are numbers (/0)")
    return value


def kombu_broker_url(url: str) -> str:
    """The Celery broker URL for a checked Redis URL: kombu names a Unix socket `redis+socket://` (it has no
    `unix` transport) and its database `virtual_host`, where redis-py says `unix://` and `db`."""
    parts = urlsplit(url)
    if parts.scheme != "unix":
        return url
    query = urlencode([("virtual_host" if key == "db" else key, value) for key, value in parse_qsl(parts.query)])
    # Not urlunsplit: it drops the `//` of an empty host, and kombu then reads no transport at all.
    return f"redis+socket://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")


def check_json_object(name: str, value: str) -> str:
    """`value` must be a JSON object (constructor options); the message never quotes it (it may hold keys)."""
    import json

    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(parsed, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object ({{...}}), not {type(parsed).__name__}")
    return value
