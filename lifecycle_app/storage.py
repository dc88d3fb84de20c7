"""Cold storage for archives: put, get and delete bytes under a key.

The default is a directory on the filesystem (ARCHIVE_DIR). Any Django storage class can take its place
(ARCHIVE_STORAGE_BACKEND, with ARCHIVE_STORAGE_OPTIONS as its constructor's keyword arguments), which is how
an S3-compatible bucket is used: django-storages' `storages.backends.s3.S3Storage`. Keys are made from ids and
numbers only (`<tenant>/<session>/<name>.json.gz`, every object of a session in its folder), never from anything
a client sent.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.utils.module_loading import import_string

from memory_admin.errors import NotFound

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class ArchiveStorage(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing what was there; durable when it returns."""

    def get(self, key: str) -> bytes:
        """The bytes under `key`; NotFound when there are none."""

    def delete(self, key: str) -> None:
        """Remove `key`; nothing happens when it is not there."""

    def exists(self, key: str) -> bool:
        """Whether there are bytes under `key`."""

    def listdir(self, folder: str) -> list[str]:
        """The keys of the objects directly in `folder` (none when there is no such folder)."""

    def folders(self, folder: str = "") -> list[str]:
        """The keys of the folders directly in `folder`, or at the top when it is empty (none when there is no
        such folder); names that cannot be keys are left out."""

    def delete_folder(self, folder: str) -> int:
        """Remove every object under `folder`, those in its folders too; how many went (none when there is no such
        folder). The folders go with them on the filesystem and in a bucket; another Django storage may keep
        them, empty."""

    def modified_at(self, key: str) -> datetime:
        """When the object under `key` was last written; NotFound when there is none."""


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key) or ".." in key:
        raise ValueError(f"not an archive key: {key!r}")
    return key


def _in(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def session_folder(tenant_id: object, session_pk: object) -> str:
    """The folder holding every archive object of a session."""
    return check_key(f"{tenant_id}/{session_pk}")


class FileSystemArchive:
    """Files under a root directory, written to a temporary file, flushed to disk, then renamed into place.

    The temporary file is in the object's folder under a name that is a key too (`part-…`): one a killed worker
    left is listed, and removed, with the folder's other objects.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix="part-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound("The archive object is missing from storage.", details={"key": key}) from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def listdir(self, folder: str) -> list[str]:
        try:
            return sorted(f"{folder}/{path.name}" for path in self._path(folder).iterdir() if path.is_file())
        except FileNotFoundError:
            return []

    def folders(self, folder: str = "") -> list[str]:
        try:
            paths = list((self._path(folder) if folder else self.root).iterdir())
        except FileNotFoundError:
            return []
        return sorted(_in(folder, path.name) for path in paths if path.is_dir() and _KEY.fullmatch(path.name))

    def delete_folder(self, folder: str) -> int:
        path = self._path(folder)
        objects = sum(1 for inner in path.rglob("*") if inner.is_file())
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)
        return objects

    def modified_at(self, key: str) -> datetime:
        try:
            return datetime.fromtimestamp(self._path(key).stat().st_mtime, tz=UTC)
        except FileNotFoundError:
            raise NotFound("The archive object is missing from storage.", details={"key": key}) from None


class DjangoStorageArchive:
    """Any Django storage backend (an S3 bucket through django-storages, for example)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def put(self, key: str, data: bytes) -> None:
        check_key(key)
        # Django storages pick a new name when one exists; an archive step that is retried must replace it.
        if self.storage.exists(key):
            self.storage.delete(key)
        saved = self.storage.save(key, ContentFile(data))
        if saved != key:
            raise ImproperlyConfigured(f"the archive storage renamed {key!r} to {saved!r}")

    def get(self, key: str) -> bytes:
        check_key(key)
        if not self.storage.exists(key):
            raise NotFound("The archive object is missing from storage.", details={"key": key})
        with self.storage.open(key, "rb") as file:
            data: bytes = file.read()
        return data

    def delete(self, key: str) -> None:
        check_key(key)
        self.storage.delete(key)

    def exists(self, key: str) -> bool:
        return bool(self.storage.exists(check_key(key)))

    def listdir(self, folder: str) -> list[str]:
        try:
            _, files = self.storage.listdir(check_key(folder))
        except FileNotFoundError:
            return []
        return sorted(f"{folder}/{name}" for name in files)

    def folders(self, folder: str = "") -> list[str]:
        try:
            names, _ = self.storage.listdir(check_key(folder) if folder else "")
        except FileNotFoundError:
            return []
        return sorted(_in(folder, name) for name in names if _KEY.fullmatch(name))

    def delete_folder(self, folder: str) -> int:
        objects = sum(self.delete_folder(inner) for inner in self.folders(folder))
        for key in self.listdir(folder):
            self.storage.delete(key)
            objects += 1
        return objects

    def modified_at(self, key: str) -> datetime:
        if not self.storage.exists(check_key(key)):
            raise NotFound("The archive object is missing from storage.", details={"key": key})
        return self.storage.get_modified_time(key)


def build_storage(backend: str, options: str, root: Path) -> ArchiveStorage:
    if not backend:
        return FileSystemArchive(root)
    try:
        kwargs = json.loads(options)
    except ValueError:
        raise ImproperlyConfigured("ARCHIVE_STORAGE_OPTIONS must be a JSON object") from None
    if not isinstance(kwargs, dict):
        raise ImproperlyConfigured("ARCHIVE_STORAGE_OPTIONS must be a JSON object")
    try:
        storage_class = import_string(backend)
    except ImportError as exc:
        raise ImproperlyConfigured(f"ARCHIVE_STORAGE_BACKEND={backend!r} cannot be imported: {exc}") from None
    try:
        storage = storage_class(**kwargs)
    except TypeError as exc:  # an option the class does not take; the message names it, never a value
        raise ImproperlyConfigured(
            f"ARCHIVE_STORAGE_OPTIONS do not fit ARCHIVE_STORAGE_BACKEND={backend!r}: {exc}"
        ) from None
    return DjangoStorageArchive(storage)


@cache
def _built(backend: str, options: str, root: str) -> ArchiveStorage:
    return build_storage(backend, options, Path(root))


def archive_storage() -> ArchiveStorage:
    """The configured archive storage (built once per process and configuration)."""
    return _built(settings.ARCHIVE_STORAGE_BACKEND, settings.ARCHIVE_STORAGE_OPTIONS, str(settings.ARCHIVE_DIR))
