"""Backend lookup through the ``voicemail.storage`` entry-point group.

Built-in backends register there exactly like third-party ones; a backend is imported only
when a URL asks for it, and two distributions claiming one name is an error, not a silent
override.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from urllib.parse import quote, urlsplit

from storage.base import Storage
from storage.errors import BackendNotFound, StorageError

ENTRY_POINT_GROUP = "voicemail.storage"
# URL schemes that name a backend differently (libpq accepts both postgres spellings).
SCHEME_ALIASES = {"postgresql": "postgres"}


def registered_backends() -> dict[str, EntryPoint]:
    """Backend name -> entry point; raises StorageError on conflicting registrations."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        other = found.get(ep.name)
        if other is not None and other.value != ep.value:
            raise StorageError(
                f"storage backend {ep.name!r} is registered twice: {other.value} and {ep.value}"
            )
        found[ep.name] = ep
    return found


def load_backend(name: str) -> type[Storage]:
    """Import and return the backend class registered as ``name``."""
    available = registered_backends()
    ep = available.get(name)
    if ep is None:
        known = ", ".join(sorted(available)) or "none (is kamailio-voicemail installed?)"
        raise BackendNotFound(f"no storage backend {name!r}; registered: {known}")
    try:
        cls = ep.load()
    except BackendNotFound:
        raise
    except ImportError as exc:
        raise BackendNotFound(f"storage backend {name!r} ({ep.value}) cannot load: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Storage)):
        raise BackendNotFound(f"storage backend {name!r} ({ep.value}) is not a Storage class")
    return cls


def open_storage(url: str) -> Storage:
    """The store for ``url`` (``fs:///abs/path``, ``postgresql://...``); a bare absolute
    path means the fs backend. The store connects on first use, or when awaited::

        store = await open_storage("fs:///var/spool/voicebox")
    """
    if url.startswith("/"):
        url = "fs://" + quote(url)
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ValueError(f"storage URL needs a scheme (fs://, postgresql://), got {url!r}")
    return load_backend(SCHEME_ALIASES.get(scheme, scheme))(url)
