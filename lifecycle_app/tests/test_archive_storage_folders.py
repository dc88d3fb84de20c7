"""Archive storage lists its folders (the top level included) and removes a folder with everything under it, on
the filesystem, through a Django storage, and in an S3 bucket: how a deleted tenant's archive is removed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3  # type: ignore[import-untyped]
import pytest
from django.core.files.storage import FileSystemStorage
from moto.server import ThreadedMotoServer
from storages.backends.s3 import S3Storage  # type: ignore[import-untyped]

from lifecycle_app.storage import ArchiveStorage, DjangoStorageArchive, FileSystemArchive

CREDENTIALS = {"access_key": "test-key", "secret_key": "test-secret", "region_name": "us-east-1"}


@pytest.fixture(params=["filesystem", "django-storage", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveStorage]:
    if request.param == "filesystem":
        yield FileSystemArchive(tmp_path / "archive")
    elif request.param == "django-storage":
        yield DjangoStorageArchive(FileSystemStorage(location=tmp_path / "archive"))
    else:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=CREDENTIALS["access_key"],
            aws_secret_access_key=CREDENTIALS["secret_key"],
            region_name=CREDENTIALS["region_name"],
        ).create_bucket(Bucket="agent-archive")
        try:
            yield DjangoStorageArchive(S3Storage(bucket_name="agent-archive", endpoint_url=endpoint, **CREDENTIALS))
        finally:
            server.stop()


def test_an_empty_storage_has_no_folders_and_removing_a_missing_folder_removes_nothing(storage) -> None:
    assert storage.folders() == []
    assert storage.folders("tenant") == []
    assert storage.delete_folder("tenant") == 0


def test_folders_are_listed_from_the_top_and_a_removed_folder_takes_everything_under_it(storage) -> None:
    storage.put("tenant/session-1/events-1.json.gz", b"one")
    storage.put("tenant/session-1/session-1.json.gz", b"two")
    storage.put("tenant/session-2/events-1.json.gz", b"three")
    storage.put("other/session-3/events-1.json.gz", b"another tenant's")

    assert storage.folders() == ["other", "tenant"]
    assert storage.folders("tenant") == ["tenant/session-1", "tenant/session-2"]

    assert storage.delete_folder("tenant") == 3

    assert _objects(storage, "tenant") == []
    assert _objects(storage, "other") == ["other/session-3/events-1.json.gz"]
    assert storage.delete_folder("tenant") == 0  # a Django storage may keep the folders, empty


def _objects(storage: ArchiveStorage, folder: str) -> list[str]:
    return [*storage.listdir(folder), *(key for inner in storage.folders(folder) for key in _objects(storage, inner))]
