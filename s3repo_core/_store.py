"""What the repository protocol needs of a key-value store: the ``Store`` protocol.

Leases, the writer side of collection, collection itself and verification are written
once, against this protocol, and run unchanged on an S3 bucket (``_bucket.S3Bucket``,
the only code that talks to S3) and on a local directory (``_directory.DirectoryStore``).
Keys are strings ordered as S3 orders them (by code point, which is UTF-8 byte order); times
are the store's own clock, timezone-aware, in whole seconds where the store truncates.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = [
    "DeleteOutcomeUnknown",
    "DeleteThrottled",
    "ObjectInfo",
    "ObjectReader",
    "Page",
    "PendingUpload",
    "Stat",
    "Store",
]


@dataclass(frozen=True)
class ObjectInfo:
    """A listed key: its size and last-modified time."""

    key: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class Stat:
    """A key looked at on its own: what a listing says, plus the store's clock then."""

    key: str
    size: int
    modified: datetime
    #: The store's clock when it answered, so that ages need no synchronised clocks.
    now: datetime
    #: Identifies this version of the key's bytes, where the store has one.
    etag: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    #: ``time.monotonic()`` when the listing request was sent: decisions age from it.
    sent_at: float
    items: list[ObjectInfo]
    truncated: bool
    #: The store's clock when it answered (S3's Date header), so that ages of the
    #: listed keys need no synchronised clocks. None where a store cannot tell.
    now: datetime | None = None


@dataclass(frozen=True)
class PendingUpload:
    """An upload begun and neither completed nor aborted (S3 multipart uploads)."""

    key: str
    upload_id: str
    initiated: datetime


class DeleteOutcomeUnknown(Exception):
    """A delete request got no answer: its keys may or may not be deleted.

    Collection never resends such a request blindly; it looks at the keys again first.
    """


class DeleteThrottled(Exception):
    """A delete request was refused with SlowDown: not applied, and may be sent again as
    it was, later (see ``_throttle``)."""


class ObjectReader(Protocol):
    """A key's bytes as they are read: a response body, an open file."""

    #: How many bytes this read returns (from where it started to the end of the key).
    size: int
    #: The version read, where the store names versions (S3's ETag); else None.
    etag: str | None

    def read(self, size: int, /) -> bytes:
        """Up to ``size`` bytes; empty at the end."""
        ...

    def close(self) -> None: ...


class Store(Protocol):
    """The primitives the repository protocol is built from."""

    def where(self, key: str) -> str:
        """How ``key`` is named in messages, e.g. ``s3://bucket/key``."""
        ...

    def head(self, key: str) -> Stat | None:
        """``key``'s size and age, or None if it does not exist."""
        ...

    def read(self, key: str) -> bytes:
        """The whole of a small key (leases, manifests). NotExistError if missing."""
        ...

    def open(
        self, key: str, start: int = 0, *, if_match: str | None = None, hashed: bool = False
    ) -> ObjectReader:
        """``key``'s bytes from ``start`` on, read as they come (large objects).

        ``if_match`` pins the read to a version an earlier read or head named (its
        ``etag``): a key replaced since is an error (code ``PreconditionFailed``), not
        other bytes. ``hashed``: the caller checks every byte against the key's digest
        (get, verify), so a transit checksum of the store's own would only cost CPU.
        NotExistError if ``key`` is missing.
        """
        ...

    def server_sha256(self, key: str) -> bytes | None:
        """The SHA-256 the store itself computed of ``key``'s bytes as they were written
        (S3's full-object ChecksumSHA256), if it keeps one; None otherwise or if missing.

        It says what is stored, whatever a read of it brings: verification asks it
        before it calls bytes corrupt that a read in transit may have damaged.
        """
        ...

    def put(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> datetime:
        """Write ``data`` to ``key`` atomically: readers see the old bytes or the new.

        Returns the store's clock when it answered, which is no earlier than the new
        key's last-modified time (touch records check how late they landed)."""
        ...

    def copy(self, src_key: str, dst_key: str) -> None:
        """Copy ``src_key``'s bytes to ``dst_key``, atomically at the destination (readers
        see the old bytes or the new). NotExistError if ``src_key`` is missing."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a key that is already gone is not an error."""
        ...

    def delete_unchanged(self, key: str, seen: Stat) -> bool:
        """Remove ``key`` only if it is still the version ``seen`` (same size and
        last-modified time, and ETag where the store has them); False, and nothing
        removed, if it changed or is gone. Quarantine removes corrupt bytes with it and
        never the good bytes a writer put in their place."""
        ...

    def delete_quietly(self, key: str) -> None:
        """Remove ``key``, logging a failure instead of raising (collection sweeps it)."""
        ...

    def delete_many(self, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Remove ``keys`` in one request (at most 1000): ``{key: (code, message)}`` of
        those the store refused. Raises DeleteOutcomeUnknown if the answer was lost."""
        ...

    def list_pages(
        self, prefix: str, start_after: str = "", page_size: int | None = None
    ) -> Iterator[Page]:
        """Every key that starts with ``prefix`` and sorts after ``start_after``, in key
        order, a page at a time: each page is requested only when asked for."""
        ...

    def list_uploads(self, prefix: str) -> Iterator[PendingUpload]:
        """Uploads begun under ``prefix`` and not finished (none for most stores)."""
        ...

    def abort_upload(self, upload: PendingUpload) -> bool:
        """Discard ``upload``; False if it was already gone."""
        ...

    def server_now(self, prefix: str) -> datetime:
        """The store's clock now (one cheap request under ``prefix`` on S3)."""
        ...
