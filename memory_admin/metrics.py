"""The service's own Prometheus metrics (django-prometheus adds the HTTP and database ones).

Several processes serve one host (granian's workers, Celery's): with PROMETHEUS_MULTIPROC_DIR set in their
environment (`make run` and the Docker image set it), every process writes its counters and histograms to files
there and a scrape sums them all, so a counter does not jump between workers from one scrape to the next. The
directory must exist and be emptied before the processes start.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from django.conf import settings
from django_prometheus.middleware import PrometheusAfterMiddleware
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

RECOVERIES = Counter(
    "memory_recoveries_total",
    "State recovered from Postgres, by kind: context_rebuild, event_replay, checkpoint",
    ["kind"],
)
CONTEXT_READS = Counter("memory_context_reads_total", "Hot context reads by where they were served from", ["source"])
EVENT_APPEND_SECONDS = Histogram(
    "memory_event_append_seconds",
    "Time to append a batch of events (Postgres transaction included)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
CHECKPOINT_SAVE_SECONDS = Histogram(
    "memory_checkpoint_save_seconds",
    "Time to save a checkpoint (parent rebuilt and verified, Postgres transaction and commit included)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)


class HttpMetricsMiddleware(PrometheusAfterMiddleware):
    """django-prometheus' after-middleware with every `method` label cleaned as its own counters clean it.

    Its latency histogram took the raw request method, so each made-up method (`curl -X ZZ1`, sent by
    anyone, no login needed) added a series of ~17 lines to every scrape for good; unknown methods now all
    count as `<invalid method>`.
    """

    def label_metric(self, metric: Any, request: Any, response: Any = None, **labels: str) -> Any:
        if "method" in labels:
            labels["method"] = self._method(request)
        return super().label_metric(metric, request, response, **labels)


# --- Stored data, jobs, erasure and outbox: read from Postgres at scrape time --------------------------------
# Counters kept in a worker process never reach the web process's /metrics, so what the lifecycle jobs, the
# erasure workflow and the outbox did is read from their durable rows when Prometheus scrapes, through cheap
# queries (grouped counts over indexed columns, catalog estimates), cached briefly per process.

STORED_DATA_CACHE_SECONDS = 15.0
# Every query of a scrape gives up after these (ScrapedGauges.collect): a table held by a migration's ALTER
# TABLE, a VACUUM FULL or a REINDEX must not keep the scraping web thread until it is released.
SCRAPE_LOCK_TIMEOUT = "1s"
SCRAPE_STATEMENT_TIMEOUT = "3s"
# Tables whose size and row estimate are exported (pg_class, no scan, no lock on the tables).
_TABLES = {
    "events": "sessions_app_event",
    "snapshots": "sessions_app_eventsnapshot",
    "operations": "sessions_app_operation",
    "sessions": "sessions_app_agentsession",
    "checkpoints": "checkpoints_app_checkpoint",
    "memories": "memories_app_memory",
}
# Erasure requests in these states still have work (or a failure) to see to.
_OPEN_ERASURE_STATES = ("pending", "erased", "purging", "failed")


def _family_specs() -> list[tuple[str, str, list[str]]]:
    return [
        (
            "memory_entries",
            "Live memory entries by scope and layer (pgvector: memories; postgres: events, estimated; redis: hot "
            "context windows and tool states)",
            ["layer", "scope"],
        ),
        ("memory_table_rows_estimate", "Rows per table (planner estimate)", ["table"]),
        (
            "memory_table_bytes",
            "Bytes per table in Postgres, indexes and TOAST included (catalog estimate, as of the last VACUUM or "
            "ANALYZE)",
            ["table"],
        ),
        ("memory_lifecycle_job_runs", "Lifecycle job runs started in the last 24 hours", ["job", "status"]),
        ("memory_lifecycle_job_last_duration_seconds", "Duration of the last finished run of each job", ["job"]),
        ("memory_lifecycle_job_last_success_timestamp_seconds", "When each job last succeeded (not dry runs)", ["job"]),
        ("memory_lifecycle_job_max_duration_seconds", "Longest finished run of each job in the last 24 hours", ["job"]),
        (
            "memory_lifecycle_jobs_running",
            "Job runs started and not finished (a crashed run stays here until the purge job marks it abandoned, "
            "24 hours after it started)",
            ["job"],
        ),
        ("memory_eviction_candidates", "Memories marked for eviction, waiting out their grace period", []),
        ("memory_erasure_requests_open", "Erasure requests not yet verified or rejected, by status", ["status"]),
        ("memory_erasure_oldest_open_age_seconds", "Age of the oldest open erasure request", []),
        ("memory_erasure_nearest_due_seconds", "Seconds until the nearest open erasure deadline (<0: overdue)", []),
        ("memory_outbox_pending", "Profile outbox entries not yet applied", []),
        ("memory_outbox_lag_seconds", "Age of the oldest unapplied profile outbox entry (0 when empty)", []),
        ("memory_archive_bytes", "Bytes of archive objects in cold storage, by kind", ["kind"]),
    ]


def _scrape() -> list[tuple[str, tuple[str, ...], float]]:
    """(metric, label values, value) rows, from a handful of queries."""
    from django.db import connection

    rows: list[tuple[str, tuple[str, ...], float]] = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT scope, count(*) FROM memories_app_memory WHERE deleted_at IS NULL GROUP BY scope")
        counts = dict(cursor.fetchall())
        for scope in ("session", "user", "global"):
            rows.append(("memory_entries", ("pgvector", scope), float(counts.get(scope, 0))))
        # Sizes from the catalog's page counts (the table, its TOAST table and their indexes), which VACUUM and
        # ANALYZE keep up to date: pg_total_relation_size() locks each relation, so it waited behind any
        # ACCESS EXCLUSIVE lock (a migration, a VACUUM FULL) with the scraping web thread.
        cursor.execute(
            "SELECT c.relname, greatest(c.reltuples, 0)::bigint, "
            "(SELECT coalesce(sum(part.relpages), 0) FROM pg_class part WHERE part.oid IN (c.oid, c.reltoastrelid) "
            "OR part.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN (c.oid, c.reltoastrelid))) "
            "* current_setting('block_size')::bigint "
            "FROM pg_class c WHERE c.relname = ANY(%s) AND c.relkind = 'r'",
            [list(_TABLES.values())],
        )
        by_table = {name: (estimate, size) for name, estimate, size in cursor.fetchall()}
        for label, table in _TABLES.items():
            estimate, size = by_table.get(table, (0, 0))
            rows.append(("memory_table_rows_estimate", (label,), float(estimate)))
            rows.append(("memory_table_bytes", (label,), float(size)))
        rows.append(("memory_entries", ("postgres", "session"), float(by_table.get(_TABLES["events"], (0, 0))[0])))
        cursor.execute(
            "SELECT job, status, count(*) FROM lifecycle_app_jobrun "
            "WHERE started_at > now() - interval '24 hours' GROUP BY job, status"
        )
        rows += [("memory_lifecycle_job_runs", (job, status), float(n)) for job, status, n in cursor.fetchall()]
        cursor.execute(
            "SELECT DISTINCT ON (job) job, extract(epoch FROM finished_at - started_at) FROM lifecycle_app_jobrun "
            "WHERE finished_at IS NOT NULL ORDER BY job, started_at DESC"
        )
        rows += [("memory_lifecycle_job_last_duration_seconds", (job,), float(s)) for job, s in cursor.fetchall()]
        cursor.execute(
            "SELECT job, extract(epoch FROM max(finished_at)) FROM lifecycle_app_jobrun "
            "WHERE status = 'succeeded' AND NOT dry_run GROUP BY job"
        )
        rows += [
            ("memory_lifecycle_job_last_success_timestamp_seconds", (job,), float(t)) for job, t in cursor.fetchall()
        ]
        cursor.execute(
            "SELECT job, max(extract(epoch FROM finished_at - started_at)) FROM lifecycle_app_jobrun "
            "WHERE finished_at IS NOT NULL AND started_at > now() - interval '24 hours' GROUP BY job"
        )
        rows += [("memory_lifecycle_job_max_duration_seconds", (job,), float(s)) for job, s in cursor.fetchall()]
        cursor.execute("SELECT job, count(*) FROM lifecycle_app_jobrun WHERE status = 'running' GROUP BY job")
        rows += [("memory_lifecycle_jobs_running", (job,), float(n)) for job, n in cursor.fetchall()]
        cursor.execute("SELECT count(*) FROM lifecycle_app_evictioncandidate")
        rows.append(("memory_eviction_candidates", (), float((cursor.fetchone() or (0,))[0])))
        cursor.execute(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) "
            "FROM memories_app_profilefactoutbox WHERE processed_at IS NULL"
        )
        pending, lag = cursor.fetchone() or (0, 0)
        rows += [("memory_outbox_pending", (), float(pending)), ("memory_outbox_lag_seconds", (), float(lag))]
        cursor.execute("SELECT kind, coalesce(sum(stored_bytes), 0) FROM lifecycle_app_archivesegment GROUP BY kind")
        rows += [("memory_archive_bytes", (kind,), float(n)) for kind, n in cursor.fetchall()]
    rows += _erasure_rows()
    rows += _redis_rows()
    return rows


# A scrape counts Redis keys with SCAN, at most this many keys looked at; past it the sample is left out rather
# than reported short (the keyspace is then too large to count at scrape time).
REDIS_SCAN_MAX_KEYS = 200_000


def _redis_rows() -> list[tuple[str, tuple[str, ...], float]]:
    """Hot context windows and tool states in Redis (one list per session, one key per tool state)."""
    from memory_admin.health import redis_client

    try:
        client = redis_client()
        counted = 0
        for pattern in ("mem:ctx:*:msgs", "mem:tool:*"):
            found, cursor, looked = 0, 0, 0
            while True:
                cursor, keys = client.scan(cursor=cursor, match=pattern, count=1000)
                found, looked = found + len(keys), looked + 1000
                if cursor == 0 or looked >= REDIS_SCAN_MAX_KEYS:
                    break
            if cursor != 0:
                return []
            counted += found
    except Exception as exc:  # Redis down: the other samples still go out
        structlog.get_logger("memory.metrics").warning("redis_metrics_failed", error=type(exc).__name__)
        return []
    return [("memory_entries", ("redis", "session"), float(counted))]


def _erasure_rows() -> list[tuple[str, tuple[str, ...], float]]:
    """Open erasure requests (compliance_app.ErasureRequest); nothing while that model is not installed."""
    from django.apps import apps
    from django.db.models import Count, Min
    from django.utils import timezone

    try:
        model = apps.get_model("compliance_app", "ErasureRequest")
    except LookupError:
        return []
    open_requests = model.objects.filter(status__in=_OPEN_ERASURE_STATES)
    rows: list[tuple[str, tuple[str, ...], float]] = [
        ("memory_erasure_requests_open", (status,), float(n))
        for status, n in open_requests.values_list("status").annotate(n=Count("pk")).order_by()
    ]
    oldest = open_requests.aggregate(filed=Min("filed_at"), due=Min("due_at"))
    now = timezone.now()
    if oldest["filed"] is not None:
        rows.append(("memory_erasure_oldest_open_age_seconds", (), (now - oldest["filed"]).total_seconds()))
        rows.append(("memory_erasure_nearest_due_seconds", (), (oldest["due"] - now).total_seconds()))
    else:
        rows.append(("memory_erasure_oldest_open_age_seconds", (), 0.0))
    return rows


Spec = tuple[str, str, list[str]]  # (metric name, documentation, label names)
Row = tuple[str, tuple[str, ...], float]  # (metric name, label values, value)


@contextmanager
def bounded_queries() -> Iterator[None]:
    """A transaction whose queries wait SCRAPE_LOCK_TIMEOUT at most for a lock and run SCRAPE_STATEMENT_TIMEOUT
    at most (a query past either raises, and the transaction is rolled back)."""
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')")
            before = cursor.fetchone()
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                [SCRAPE_LOCK_TIMEOUT, SCRAPE_STATEMENT_TIMEOUT],
            )
        yield
        # Inside a caller's transaction (a test's) the local settings would outlast this block: put them back.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)", before
            )


class ScrapedGauges:
    """A Prometheus collector of gauges read from the database when scraped, cached `cache_seconds` per
    process: `specs()` names the families, `scrape()` returns their rows. Its queries are bounded
    (`bounded_queries`), and one scrape per process reads at a time: scrapes meanwhile are answered from the
    previous figures, so a table lock holds one web thread for a moment, not every thread until it is released.
    A failed scrape exports empty families (the gap shows in Grafana) instead of failing the whole /metrics
    answer."""

    def __init__(
        self, name: str, specs: Callable[[], list[Spec]], scrape: Callable[[], list[Row]], cache_seconds: float
    ):
        self.name, self.specs, self.scrape, self.cache_seconds = name, specs, scrape, cache_seconds
        self._cached: tuple[float, list[Row]] | None = None
        self._reading = threading.Lock()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for metric, documentation, labels in self.specs():
            yield GaugeMetricFamily(metric, documentation, labels=labels)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        values = self._values()
        for metric, documentation, labels in self.specs():
            family = GaugeMetricFamily(metric, documentation, labels=labels)
            for name, label_values, value in values:
                if name == metric:
                    family.add_metric(list(label_values), value)
            yield family

    def _values(self) -> list[Row]:
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] <= self.cache_seconds:
            return cached[1]
        if not self._reading.acquire(blocking=False):  # another thread is reading: its previous figures
            return cached[1] if cached is not None else []
        try:
            try:
                with bounded_queries():
                    values = self.scrape()
            except Exception as exc:  # a scrape must not fail because one query did
                structlog.get_logger("memory.metrics").warning(f"{self.name}_metrics_failed", error=type(exc).__name__)
                values = []
            self._cached = (time.monotonic(), values)
            return values
        finally:
            self._reading.release()


# Collectors that read the database when scraped (their figures are not per process): registered with the
# process's registry, and with each scrape's own registry in multiprocess mode (see `exposition`).
_scrape_collectors: dict[str, ScrapedGauges] = {}


def register_scrape_collector(
    name: str, *, specs: Callable[[], list[Spec]], scrape: Callable[[], list[Row]], cache_seconds: float = 15.0
) -> None:
    """Register gauges read from the database at scrape time, once per process (apps call this from ready())."""
    if name not in _scrape_collectors:
        collector = ScrapedGauges(name, specs, scrape, cache_seconds)
        REGISTRY.register(collector)
        _scrape_collectors[name] = collector


def forget_scraped_figures() -> None:
    """Make the next scrape read the database afresh instead of the collectors' short caches (for tests)."""
    for collector in _scrape_collectors.values():
        collector._cached = None


def register_stored_data_collector() -> None:
    """Register the stored-data collector (lifecycle_app's ready() calls this)."""
    register_scrape_collector(
        "stored_data", specs=_family_specs, scrape=_scrape, cache_seconds=STORED_DATA_CACHE_SECONDS
    )


def _bearer_bytes(authorization: str) -> bytes:
    """The bearer value as the client sent it. Servers hand header values over as their bytes read as latin-1
    (WSGI, and Django's ASGI handler), and compare_digest refuses non-ASCII text (a TypeError, so a 500): as
    bytes, a non-ASCII value is just a wrong one, and a token set in UTF-8 matches what a scraper sends."""
    try:
        return authorization.encode("latin-1")[7:].strip()
    except UnicodeEncodeError:  # not a header a server handed over (a test's): no byte string is it
        return b""


def scrape_allowed(authorization: str, remote_addr: str) -> bool:
    """Whether a scrape may be answered without a login: `Bearer $METRICS_TOKEN`, or a loopback caller."""
    token = settings.METRICS_TOKEN
    # The token as the environment's bytes, whatever they are (surrogateescape gives them back).
    expected = token.encode("utf-8", "surrogateescape") if token else b""
    if expected and authorization.startswith("Bearer ") and hmac.compare_digest(_bearer_bytes(authorization), expected):
        return True
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    # A dual-stack listener (HOST=::) hands an IPv4 caller over as ::ffff:a.b.c.d, never loopback by itself.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def exposition() -> bytes:
    """The text Prometheus scrapes: every process's counters and histograms (summed from
    PROMETHEUS_MULTIPROC_DIR when it is set, else this process's), and the stored-data gauges."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    for collector in _scrape_collectors.values():
        registry.register(collector)
    return generate_latest(registry)
