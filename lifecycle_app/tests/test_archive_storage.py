"""Archive storage: the filesystem directory and any Django storage backend keep and return the same bytes,
replace an object on retry, refuse keys that could escape, and a tampered object fails its checksum."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage

from lifecycle_app.archive import ArchiveDocument, pack, unpack
from lifecycle_app.storage import DjangoStorageArchive, FileSystemArchive, build_storage
from memory_admin.errors import IntegrityFailure, NotFound


@pytest.fixture(params=["filesystem", "django-storage"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> FileSystemArchive | DjangoStorageArchive:
    if request.param == "filesystem":
        return FileSystemArchive(tmp_path)
    return DjangoStorageArchive(FileSystemStorage(location=tmp_path))


def test_an_object_comes_back_as_it_was_stored_and_a_retry_replaces_it(storage) -> None:
    storage.put("tenant/session/events-1.json.gz", b"first")
    storage.put("tenant/session/events-1.json.gz", b"second")

    assert storage.get("tenant/session/events-1.json.gz") == b"second"
    storage.delete("tenant/session/events-1.json.gz")
    with pytest.raises(NotFound):
        storage.get("tenant/session/events-1.json.gz")


def test_a_folder_lists_its_objects_with_when_each_was_written(storage) -> None:
    before = datetime.now(tz=UTC) - timedelta(seconds=5)
    storage.put("tenant/session/events-1.json.gz", b"one")
    storage.put("tenant/session/events-2.json.gz", b"two")
    storage.put("tenant/other/events-1.json.gz", b"another session's")

    assert storage.listdir("tenant/session") == ["tenant/session/events-1.json.gz", "tenant/session/events-2.json.gz"]
    assert storage.listdir("tenant/nobody") == []
    assert storage.exists("tenant/session/events-1.json.gz") and not storage.exists("tenant/session/events-3.json.gz")
    assert before < storage.modified_at("tenant/session/events-1.json.gz") < datetime.now(tz=UTC) + timedelta(seconds=5)
    with pytest.raises(NotFound):
        storage.modified_at("tenant/session/events-3.json.gz")


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "a/../../b", "a//b", ""])
def test_keys_that_could_escape_the_archive_are_refused(storage, key: str) -> None:
    with pytest.raises(ValueError, match="not an archive key"):
        storage.put(key, b"x")


def test_a_configured_storage_class_is_built_with_its_options(tmp_path: Path) -> None:
    built = build_storage(
        "django.core.files.storage.FileSystemStorage", f'{{"location": "{tmp_path}"}}', tmp_path / "unused"
    )

    built.put("k/v.json.gz", b"data")

    assert isinstance(built, DjangoStorageArchive) and (tmp_path / "k" / "v.json.gz").read_bytes() == b"data"


def test_the_same_rows_pack_to_the_same_bytes_and_a_changed_byte_fails_the_checksum() -> None:
    document = ArchiveDocument(kind="events", tenant="t", session="s", from_version=1, to_version=1)
    data, digest = pack(document)

    assert pack(document) == (data, digest)
    assert unpack(data, sha256=digest) == document
    with pytest.raises(IntegrityFailure):
        unpack(data[:-1] + bytes([data[-1] ^ 1]), sha256=digest)
