"""The hot lane's WSGI layer: match a hot route, serve it when plain, else hand the request to Django.

See the package docstring for what "plain" means and why the lane exists.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from http import HTTPStatus
from io import BytesIO
from typing import Any
from urllib.parse import parse_qsl

import redis
import structlog
from django import db
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.urls import resolve
from django_prometheus.middleware import Metrics
from prometheus_client import Counter

from memory_admin import live
from memory_admin.api import idempotency
from memory_admin.api.errors import BEYOND_DATABASE_LIMIT, beyond_database_limit, error_body
from memory_admin.api.idempotency import Claim, checked_key, new_claim, stored_key
from memory_admin.api.parsers import NOT_PLAIN, parse_plainly
from memory_admin.codec import escape_line_separators, loads, response_json
from memory_admin.errors import ServiceError, ValidationFailed
from memory_admin.observability import REQUEST_ID_HEADER, accepted_request_id, log_request
from tenants_app.authentication import KEY_CHECK_ENVIRON, resolve_key
from tenants_app.keycache import check as check_key
from tenants_app.models import ApiKey, Tenant
from tenants_app.services import hash_key

logger = structlog.get_logger("memory.api")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Session ids, thread ids and tool names all follow this pattern; a path segment that does not is Django's
# to refuse (it answers 404 with the details the client needs).
_ID = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
_TAKES_JSON = frozenset({"", "*/*", "application/json"})
_JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


def _host_allowed(environ: dict[str, Any]) -> bool:
    """Whether the request's host is among ALLOWED_HOSTS, as Django checks it (ApiRequestGuardMiddleware refuses
    the rest): asked once per combination of what names the host, and the setting itself."""
    return _allowed_host(
        environ.get("HTTP_HOST"),
        environ.get("HTTP_X_FORWARDED_HOST"),
        environ.get("SERVER_NAME"),
        environ.get("SERVER_PORT"),
        tuple(settings.ALLOWED_HOSTS),
    )


@lru_cache(maxsize=256)  # the least recently seen go first: made-up hosts cannot crowd out the real one
def _allowed_host(
    host: str | None,
    forwarded: str | None,
    server: str | None,
    port: str | None,
    allowed: tuple[str, ...],  # the key
) -> bool:
    request = HttpRequest()
    names = {"HTTP_HOST": host, "HTTP_X_FORWARDED_HOST": forwarded, "SERVER_NAME": server, "SERVER_PORT": port}
    request.META = {name: value for name, value in names.items() if value is not None}
    try:
        request.get_host()
    except DisallowedHost:
        return False
    return True


class Fallback(Exception):
    """Raised by a route's parser or handler before any effect: Django serves this request instead."""


class _Sent:
    """A response body whose `close` does what the client need not wait for: the live updates the request
    published, its access log line and metrics. A WSGI server calls `close` once the response is sent
    (PEP 3333; granian, once it has the body and is writing it). Not a list: granian sends a list without closing it."""

    __slots__ = ("_after", "body")

    def __init__(self, body: bytes, after: Callable[[], None]) -> None:
        self.body = body
        self._after: Callable[[], None] | None = after

    def __iter__(self) -> Iterator[bytes]:
        yield self.body

    def close(self) -> None:
        after, self._after = self._after, None
        if after is not None:
            try:
                after()
            except Exception:
                logger.exception("after_response_failed")


@dataclass
class HotResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(data: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> HotResponse:
    return HotResponse(status, response_json(data), list(headers))


class HotRequest:
    """What a hot handler sees: the path's parameters, the caller's tenant and key, the raw environ."""

    __slots__ = ("api_key", "environ", "idempotency_key", "kwargs", "rate", "request_id", "tenant")

    def __init__(self, environ: dict[str, Any], kwargs: dict[str, str], request_id: str) -> None:
        self.environ = environ
        self.kwargs = kwargs
        self.request_id = request_id
        self.tenant: Tenant
        self.api_key: ApiKey
        self.rate: tuple[int, int] | None = None
        self.idempotency_key: str | None = None

    @property
    def path(self) -> str:
        """As Django's request.path: the script name and the path."""
        return f"{self.environ.get('SCRIPT_NAME', '')}{self.environ['PATH_INFO']}"

    def header(self, name: str) -> str | None:
        value: str | None = self.environ.get("HTTP_" + name.upper().replace("-", "_"))
        return value

    def stored_idempotency_key(self) -> str | None:
        """The Idempotency-Key as the services store it with what they append (see api.idempotency.stored_key)."""
        return stored_key(self.environ["REQUEST_METHOD"], self.path, self.environ.get("HTTP_IDEMPOTENCY_KEY"))


@dataclass(frozen=True)
class HotRoute:
    """A request shape the lane serves. `parse` turns the decoded JSON body (None for a GET) into the
    handler's arguments or raises Fallback; `handle` does the work through the app's services."""

    method: str
    # The path with {name} for each parameter, e.g. "/api/v1/sessions/{session_id}/context".
    template: str
    # The Django URL it shadows, e.g. "api:session-context": checked at start-up.
    url_name: str
    parse: Callable[[Any], Any]
    handle: Callable[[HotRequest, Any], HotResponse]
    # Whether the request carries a JSON body.
    has_body: bool = True
    # The query parameters a route without a body reads: `parse` is then given them as a dict (each name at
    # most once). A route without any takes no query string; an unknown name is Django's to answer.
    query: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Bound:
    route: HotRoute
    pattern: re.Pattern[str]
    route_text: str  # Django's route string, for the access line
    allow: str  # the shadowed view's Allow header
    requests: Any  # metric children fixed by method and view
    latency: Any
    by_transport: dict[str, tuple[Any, Any]]  # "http"/"https": the children by transport, and by view too
    view: str


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(f"(?P<{part}>{_ID})" if index % 2 else re.escape(part) for index, part in enumerate(parts))
    return re.compile(f"{regex}\\Z")


def _sample(template: str) -> str:
    return re.sub(r"\{\w+\}", "sample-id", template)


def _security_headers() -> list[tuple[str, str]]:
    """What django.middleware.security.SecurityMiddleware adds to every API response under these settings."""
    headers = []
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        headers.append(("Referrer-Policy", policy if isinstance(policy, str) else ",".join(policy)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    return headers


class HotLane:
    """A WSGI application: `routes` served here when plain, every other request passed to `django`."""

    def __init__(self, django: WSGIApp, routes: Sequence[HotRoute]) -> None:
        self.django = django
        # HSTS and HTTPS redirects depend on each request's scheme; a deployment that asks Django for them
        # gets them from Django for every request.
        self.enabled = not (settings.SECURE_SSL_REDIRECT or settings.SECURE_HSTS_SECONDS)
        self.security_headers = _security_headers()
        self.metrics = Metrics.get_instance()
        # What django-prometheus counts for every DRF response: its charset (DRF's JSON renderer sets none, so
        # the default's) and its template name (none: str(None)).
        self.charset = self.metrics.responses_by_charset.labels(charset=settings.DEFAULT_CHARSET)
        self.template = self.metrics.responses_by_templatename.labels(templatename="None")
        self.by_method: dict[str, list[_Bound]] = {}
        for route in routes:
            bound = self._bind(route)
            self.by_method.setdefault(route.method, []).append(bound)
        self._statuses: dict[tuple[int, str], tuple[Any, Any]] = {}

    def _bind(self, route: HotRoute) -> _Bound:
        match = resolve(_sample(route.template))
        view_class = getattr(match.func, "view_class", None)
        if match.view_name != route.url_name or view_class is None:
            raise RuntimeError(f"hot route {route.template} resolves to {match.view_name}, not {route.url_name}")
        if not hasattr(view_class, route.method.lower()):
            raise RuntimeError(f"{match.view_name} has no {route.method} for the hot route {route.template}")
        # As DRF computes it on an instance, where Django's View.setup() has made `head` answer like `get`.
        allow = ", ".join(
            method.upper()
            for method in view_class.http_method_names
            if hasattr(view_class, method) or (method == "head" and hasattr(view_class, "get"))
        )
        return _Bound(
            route=route,
            pattern=_compile(route.template),
            route_text=match.route,
            allow=allow,
            requests=self.metrics.requests_by_method.labels(method=route.method),
            latency=self.metrics.requests_latency_by_view_method.labels(view=match.view_name, method=route.method),
            by_transport={
                transport: (
                    self.metrics.requests_by_transport.labels(transport=transport),
                    self.metrics.requests_by_view_transport_method.labels(
                        view=match.view_name, transport=transport, method=route.method
                    ),
                )
                for transport in ("http", "https")
            },
            view=match.view_name,
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        served = self.serve(environ, start_response)
        return served if served is not None else self.django(environ, start_response)

    def serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes] | None:
        """Serve the request if it is a plain hot one; None (nothing started) when Django should."""
        bound, kwargs = self._match(environ)
        if bound is None:
            return None
        started = time.perf_counter()
        connection = db.connections[db.DEFAULT_DB_ALIAS]
        # What Django's request_started and request_finished receivers do for the one connection used here: a
        # connection past its age, or broken by an error, is closed (a new one is opened on next use). A request
        # served inside a transaction (a test's) leaves the connection alone, as Django's test client does.
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
        announcements: live.Messages = []
        try:
            with live.held() as announcements:
                response = self._serve(bound, kwargs, environ)
            if response is None:  # handed to Django: nothing waits for a response from here
                live.send(announcements)
                return None
            request_id = environ["memory.request_id"]
            # Bodies spliced from stored JSON texts (a context window, a checkpoint's state) may hold raw
            # U+2028 / U+2029, which DRF's renderer escapes.
            body = escape_line_separators(response.body)
            headers = [("Content-Type", "application/json"), ("Allow", bound.allow), *response.headers]
            headers += self.security_headers
            headers.append((REQUEST_ID_HEADER, request_id))
            headers.append(("Content-Length", str(len(body))))
            start_response(_STATUS_LINES[response.status], headers)
        except BaseException:
            live.send(announcements)  # what was committed is announced, whatever happens to the response
            raise
        finally:
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
        elapsed, status = time.perf_counter() - started, response.status

        def after() -> None:
            try:
                self._observe(bound, environ, status, elapsed, len(body))
            finally:
                live.send(announcements)

        return _Sent(body, after)

    def _match(self, environ: dict[str, Any]) -> tuple[_Bound | None, dict[str, str]]:
        if not self.enabled:
            return None, {}
        has_query = bool(environ.get("QUERY_STRING"))
        for bound in self.by_method.get(environ.get("REQUEST_METHOD", ""), ()):
            found = bound.pattern.fullmatch(environ.get("PATH_INFO", ""))
            if found is not None:
                return (None, {}) if has_query and not bound.route.query else (bound, found.groupdict())
        return None, {}

    def _serve(self, bound: _Bound, kwargs: dict[str, str], environ: dict[str, Any]) -> HotResponse | None:
        """The response, or None to hand the request to Django (with its body put back)."""
        route = bound.route
        if environ.get("HTTP_ACCEPT", "*/*") not in _TAKES_JSON or not _host_allowed(environ):
            return None
        if not route.has_body and (
            environ.get("CONTENT_LENGTH") not in (None, "", "0") or "HTTP_TRANSFER_ENCODING" in environ
        ):
            return None  # a read sent with a body: Django ignores it, or refuses it (over the limit: 413)
        raw = _raw_key(environ)
        if raw is None:
            return None
        idempotency_key = None
        if route.has_body and "HTTP_IDEMPOTENCY_KEY" in environ:
            try:
                idempotency_key = checked_key(environ["HTTP_IDEMPOTENCY_KEY"])
            except ValidationFailed:
                return None  # Django words the 400
        data: Any = None
        body = b""
        if route.query:
            data = _plain_query(environ.get("QUERY_STRING", ""), route.query)
            if data is None:
                return None
        elif route.has_body:
            read = _read_body(environ)
            data = NOT_PLAIN if read is None else parse_plainly(read)
            if data is NOT_PLAIN:
                return None
            body = read or b""
        try:
            arguments = route.parse(data)
        except Fallback:
            return None
        except Exception:  # a parser that did not expect this body: Django's parsers and serializers judge it
            logger.warning("hot_lane_parser_failed", route=route.template, exc_info=True)
            return None
        request_id = accepted_request_id(environ.get("HTTP_X_REQUEST_ID"))
        environ["memory.request_id"] = request_id
        request = HotRequest(environ, kwargs, request_id)
        request.idempotency_key = idempotency_key
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            return self._authenticated(route, request, raw, arguments, body)
        finally:
            structlog.contextvars.clear_contextvars()

    def _authenticated(
        self, route: HotRoute, request: HotRequest, raw: str, arguments: Any, body: bytes
    ) -> HotResponse | None:
        key_check = check_key(hash_key(raw))  # Redis trouble is (None, None): Postgres answers alone
        request.environ[KEY_CHECK_ENVIRON] = key_check  # for Django, should it get the request: counted once
        try:
            api_key, count = resolve_key(raw, key_check)
        except db.Error:
            return None  # Django answers (503 while Postgres is away) and drops the broken connection
        if api_key is None or (count is not None and count > settings.API_RATE_LIMIT_PER_MINUTE):
            return None  # 401 or 429, Django's
        request.api_key, request.tenant = api_key, api_key.tenant
        rate_headers = [] if count is None else _rate_headers(settings.API_RATE_LIMIT_PER_MINUTE, count)
        try:
            response = self._handled(route, request, arguments, body)
        except ServiceError as exc:
            retry_after = getattr(exc, "retry_after", None)
            extra = [("Retry-After", str(retry_after))] if retry_after is not None else []
            error = error_body(exc.status, exc.code, exc.message, exc.details, request)
            return HotResponse(exc.status, response_json(error), extra + rate_headers)
        except (db.OperationalError, db.InterfaceError, redis.ConnectionError, redis.TimeoutError) as exc:
            # The same answer as Django's exception handler; the broken connection is dropped when the request ends.
            if beyond_database_limit(exc):
                logger.warning("database_limit_exceeded", sqlstate=getattr(exc.__cause__, "sqlstate", None))
                status, code, message = BEYOND_DATABASE_LIMIT
                error = error_body(status, code, message, {}, request)
                return HotResponse(status, response_json(error), rate_headers)
            logger.warning("layer_unavailable", error=type(exc).__name__)
            error = error_body(503, "unavailable", "A storage layer is unavailable; retry shortly.", {}, request)
            return HotResponse(503, response_json(error), [("Retry-After", "1"), *rate_headers])
        except Exception:
            logger.exception("unhandled_error", path_prefix=["api", "v1"])
            error = error_body(500, "server_error", "An unexpected error occurred; it has been logged.", {}, request)
            return HotResponse(500, response_json(error))
        if response is not None:
            response.headers += rate_headers
        return response

    def _handled(self, route: HotRoute, request: HotRequest, arguments: Any, body: bytes) -> HotResponse | None:
        """The route's response (None: Django's, nothing done), its Idempotency-Key claimed, then completed or
        released. Raises what the route raises, the claim released first."""
        claim = _claim(request, body) if request.idempotency_key is not None else None
        if claim is _TAKEN:  # a retry, a clash or one in flight: Django replays or refuses it
            return None
        try:
            response = route.handle(request, arguments)
        except Fallback:
            response = None
        except BaseException:
            if isinstance(claim, Claim):
                idempotency.release(claim)
            raise
        if isinstance(claim, Claim):
            if response is not None and 200 <= response.status < 300:
                idempotency.complete(
                    claim,
                    path=request.path,
                    status=response.status,
                    data=loads(response.body),
                    headers=dict(response.headers),
                )
            else:
                idempotency.release(claim)
        return response

    def _observe(self, bound: _Bound, environ: dict[str, Any], status: int, elapsed: float, sent: int) -> None:
        """What django-prometheus's two middlewares and RequestIdMiddleware record for the request, as they do."""
        metrics = self.metrics
        metrics.requests_total.inc()
        bound.requests.inc()
        by_transport, by_view = bound.by_transport[_transport(environ)]
        by_transport.inc()
        if environ.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest":
            metrics.requests_ajax.inc()
        metrics.requests_body_bytes.observe(int(environ.get("CONTENT_LENGTH") or 0))  # checked in _serve
        by_view.inc()
        self.template.inc()
        by_status = self._status_metrics(status, bound)
        by_status[0].inc()
        by_status[1].inc()
        self.charset.inc()
        metrics.responses_body_bytes.observe(sent)
        bound.latency.observe(elapsed)
        metrics.responses_total.inc()
        metrics.requests_latency_before.observe(elapsed)
        log_request(
            request_id=environ["memory.request_id"],
            method=bound.route.method,
            route=bound.route_text,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
        )

    def _status_metrics(self, status: int, bound: _Bound) -> tuple[Counter, Counter]:
        key = (status, bound.view)
        found = self._statuses.get(key)
        if found is None:
            found = (
                self.metrics.responses_by_status.labels(status=str(status)),
                self.metrics.responses_by_status_view_method.labels(
                    status=str(status), view=bound.view, method=bound.route.method
                ),
            )
            self._statuses[key] = found
        return found


def _transport(environ: dict[str, Any]) -> str:
    """As django-prometheus labels a request: "https" when Django's request.is_secure() says so, else "http"."""
    proxy_header = settings.SECURE_PROXY_SSL_HEADER
    if proxy_header is not None:
        forwarded = environ.get(proxy_header[0])
        if forwarded is not None:
            return "https" if forwarded.split(",", 1)[0].strip() == proxy_header[1] else "http"
    return "https" if environ.get("wsgi.url_scheme") == "https" else "http"


def _rate_headers(limit: int, count: int) -> list[tuple[str, str]]:
    return [("X-RateLimit-Limit", str(limit)), ("X-RateLimit-Remaining", str(max(0, limit - count)))]


def _raw_key(environ: dict[str, Any]) -> str | None:
    """The API key from `Authorization: Bearer …` or `X-API-Key`, when given in the usual form."""
    header = environ.get("HTTP_AUTHORIZATION")
    if header:
        scheme, _, value = header.partition(" ")
        value = value.strip()
        return value if scheme.lower() == "bearer" and value else None
    key = environ.get("HTTP_X_API_KEY", "").strip()
    return key or None


def _plain_query(raw: str, names: frozenset[str]) -> dict[str, str] | None:
    """The query string as a dict when it is plain: ASCII, well formed, UTF-8 once unquoted, only `names`,
    each at most once, no NUL; else None (Django reads what a client meant by anything else)."""
    if not raw.isascii():
        return None
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True, errors="strict", max_num_fields=len(names))
    except ValueError:  # malformed, not UTF-8 (UnicodeDecodeError), or more fields than the route reads
        return None
    found = dict(pairs)
    if len(found) != len(pairs) or not found.keys() <= names or any("\x00" in value for value in found.values()):
        return None
    return found


def _read_body(environ: dict[str, Any]) -> bytes | None:
    """The request body when it is declared JSON and of an acceptable length (then it is also put back for
    Django, should the request be handed over); else None, without reading anything."""
    if environ.get("CONTENT_TYPE", "").lower() not in _JSON_TYPES:
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length <= 0 or length > settings.API_MAX_BODY_BYTES:
        return None
    try:
        body: bytes = environ["wsgi.input"].read(length)
    except OSError:  # the client went away mid-body: Django reads what is left, and answers
        return None
    environ["wsgi.input"] = BytesIO(body)
    return body if len(body) == length else None


# --- Idempotency-Key: the same records as memory_admin.api.idempotency, so a retry may land in either lane ------

_TAKEN = object()


def _claim(request: HotRequest, body: bytes) -> Claim | object | None:
    """This request's claim on its key (a Claim); _TAKEN when the key holds another request's record (done, in
    flight, or for another body: Django's decorator answers each); None when Redis cannot say (the request runs
    unprotected, as in Django)."""
    assert request.idempotency_key is not None
    method = request.environ["REQUEST_METHOD"]
    claim = new_claim(request.tenant.pk, method, request.path, request.idempotency_key, body)
    try:
        won = idempotency.take(claim)
    except redis.RedisError as exc:
        logger.warning("idempotency_unavailable", error=type(exc).__name__)
        return None
    return claim if won else _TAKEN
