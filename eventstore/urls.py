"""Backing services are attached resources, chosen by URL (12-factor)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from eventstore.errors import EventStoreError


class UnsupportedUrl(EventStoreError, ValueError):
    """The URL names no backend this build knows."""


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A parsed database URL: the backend, and its DSN (PostgreSQL) or path (SQLite)."""

    backend: Literal["postgresql", "sqlite"]
    dsn: str
    path: str
    safe: str
    """The URL with any password masked, for messages and logs."""

    @property
    def in_memory(self) -> bool:
        return self.backend == "sqlite" and self.path == ":memory:"


def parse_database_url(url: str) -> DatabaseUrl:
    """Parse ``postgresql://…``, ``sqlite:///relative.db``, ``sqlite:////abs.db`` or
    ``sqlite://:memory:``."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme in ("postgresql", "postgres"):
        dsn = urlunsplit(("postgresql", *parts[1:]))
        return DatabaseUrl("postgresql", dsn, "", mask_password(url))
    if scheme == "sqlite":
        path = _sqlite_path(url)
        return DatabaseUrl("sqlite", "", path, url)
    raise UnsupportedUrl(f"unsupported database URL {mask_password(url)!r}")


def _sqlite_path(url: str) -> str:
    rest = url.split("://", 1)[1]
    if rest in (":memory:", "/:memory:", ""):
        return ":memory:"
    # sqlite:///relative/path -> "relative/path"; sqlite:////abs/path -> "/abs/path"
    return rest[1:] if rest.startswith("/") else rest


def mask_password(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, *parts[2:]))
