"""What the repository protocol needs of a key-value store: the ``Store`` protocol.

Leases, the writer side of collection and collection itself are written once, against
this protocol, and run unchanged on an S3 bucket (``_bucket.S3Bucket``, the only code
that talks to S3) and on a local directory (``_directory.DirectoryStore``). Keys are
strings ordered as S3 orders them (by code point, which is UTF-8 byte order); times
are the store's own clock, timezone-aware, in whole seconds where the store truncates.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = [
    "DeleteOutcomeUnknown",
    "ObjectInfo",
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

    def put(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> datetime:
        """Write ``data`` to ``key`` atomically: readers see the old bytes or the new.

        Returns the store's clock when it answered, which is no earlier than the new
        key's last-modified time (touch records check how late they landed)."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a key that is already gone is not an error."""
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
