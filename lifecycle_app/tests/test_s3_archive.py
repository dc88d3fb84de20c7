"""Archives in an S3-compatible bucket through django-storages (the S3 backend, boto3 over real HTTP to a local
S3 stand-in): a session archived there is read back on the dashboard and restored to identical rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from moto.server import ThreadedMotoServer

from conftest import World, logged_in
from lifecycle_app import jobs
from lifecycle_app.models import ArchiveSegment
from lifecycle_app.services import restore_archive
from lifecycle_app.storage import DjangoStorageArchive, archive_storage
from sessions_app.models import Event

from .conftest import age, grow_session, rows_of

pytestmark = pytest.mark.django_db

CREDENTIALS = {"aws_access_key_id": "test-key", "aws_secret_access_key": "test-secret", "region_name": "us-east-1"}


@pytest.fixture
def bucket(settings: Any) -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, **CREDENTIALS)
    client.create_bucket(Bucket="agent-archive")
    settings.ARCHIVE_STORAGE_BACKEND = "storages.backends.s3.S3Storage"
    settings.ARCHIVE_STORAGE_OPTIONS = json.dumps(
        {
            "bucket_name": "agent-archive",
            "endpoint_url": endpoint,
            "access_key": CREDENTIALS["aws_access_key_id"],
            "secret_key": CREDENTIALS["aws_secret_access_key"],
            "region_name": CREDENTIALS["region_name"],
        }
    )
    try:
        yield client
    finally:
        server.stop()


def keys(client: Any) -> set[str]:
    listed = client.list_objects_v2(Bucket="agent-archive")
    return {item["Key"] for item in listed.get("Contents", [])}


def test_a_session_archived_to_a_bucket_is_audited_and_restored_identically(
    world: World, bucket: Any, django_capture_on_commit_callbacks: Any
) -> None:
    session = grow_session(world, steps=230)
    age(session, days=100)
    before = rows_of(session)

    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    assert isinstance(archive_storage(), DjangoStorageArchive)
    assert run.counts["events"] == 230 and not Event.objects.filter(session=session).exists()
    segments = list(ArchiveSegment.objects.filter(session=session).order_by("-to_version", "kind"))
    assert keys(bucket) == {segment.storage_key for segment in segments}
    stored = bucket.get_object(Bucket="agent-archive", Key=segments[-1].storage_key)["Body"].read()
    assert stored[:2] == b"\x1f\x8b" and len(stored) == segments[-1].stored_bytes  # gzip, as recorded
    events = next(segment for segment in segments if segment.kind == "events")
    page = logged_in(world.support).get(f"/lifecycle/archives/{events.pk}/")
    assert page.status_code == 200 and "message 4" in page.content.decode()

    for segment in segments:
        with django_capture_on_commit_callbacks(execute=True):
            restore_archive(segment=segment)

    after = rows_of(session)
    # Every row that left is back, byte for byte; the snapshot archival took at the head (230) stayed.
    assert [row[1] for row in after["snapshots"]] == [100, 200, 230]
    assert {**after, "snapshots": after["snapshots"][:2]} == before
    assert keys(bucket) == set()  # each object is removed once its rows are back
