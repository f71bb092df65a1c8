"""Backends load through the voicemail.storage entry-point group."""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import EntryPoint

import pytest

import storage.registry
from storage import BackendNotFound, StorageError, load_backend, open_storage
from storage.fs import FsStorage


def test_builtins_are_registered_as_entry_points() -> None:
    found = storage.registry.registered_backends()
    assert found["fs"].value == "storage.fs:FsStorage"
    assert found["postgres"].value == "storage.postgres:PostgresStorage"
    assert load_backend("fs") is FsStorage


def test_postgresql_scheme_selects_the_postgres_backend() -> None:
    assert type(open_storage("postgresql://vm@127.0.0.1/vm")).backend == "postgres"
    assert type(open_storage("postgres://vm@127.0.0.1/vm")).backend == "postgres"


def test_unknown_scheme_names_what_is_registered() -> None:
    with pytest.raises(BackendNotFound, match=r"no storage backend 'redis'; registered: .*fs"):
        open_storage("redis://localhost")


def test_url_without_scheme() -> None:
    with pytest.raises(ValueError, match="needs a scheme"):
        open_storage("spool")


def test_missing_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # makes `import asyncpg` fail
    monkeypatch.delitem(sys.modules, "storage.postgres", raising=False)
    with pytest.raises(BackendNotFound, match=r"pip install 'kamailio-voicemail\[postgres\]'"):
        open_storage("postgresql://vm@127.0.0.1/vm")
    monkeypatch.undo()
    importlib.import_module("storage.postgres")


def test_conflicting_registrations_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    group = storage.registry.ENTRY_POINT_GROUP
    clash = [
        EntryPoint("fs", "storage.fs:FsStorage", group),
        EntryPoint("fs", "evil.module:Spool", group),
    ]
    monkeypatch.setattr(storage.registry, "entry_points", lambda group: clash)
    with pytest.raises(StorageError, match="registered twice"):
        load_backend("fs")


def test_entry_point_must_be_a_storage_class(monkeypatch: pytest.MonkeyPatch) -> None:
    group = storage.registry.ENTRY_POINT_GROUP
    bogus = [EntryPoint("odd", "storage.names:message_name", group)]
    monkeypatch.setattr(storage.registry, "entry_points", lambda group: bogus)
    with pytest.raises(BackendNotFound, match="is not a Storage class"):
        load_backend("odd")
