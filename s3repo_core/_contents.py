"""What a repository holds, from listings alone: its objects one by one (``ls``) and
their totals per area (``du``).

Both read LIST pages as they come and hold one page at a time, so that a repository of
any size is listed in constant memory. Neither reads an object's bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._digest import Digest
from ._names import Layout
from ._shards import HEX, check_hex_shards
from ._store import Store

__all__ = ["AreaTotal", "RepositorySummary", "StoredObject", "list_objects", "summarize"]


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing shows it."""

    digest: Digest
    size: int
    modified: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": str(self.digest),
            "size": self.size,
            "modified": self.modified.isoformat(),
        }


@dataclass
class AreaTotal:
    """How many keys an area (or a shard of objects) holds, and their bytes."""

    count: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.count += 1
        self.bytes += size


@dataclass
class RepositorySummary:
    """Totals of a repository's areas, as one pass of listings found them."""

    objects: AreaTotal = field(default_factory=AreaTotal)
    #: Per first hex digit of the digest, when asked for (``by_shard``).
    shards: dict[str, AreaTotal] = field(default_factory=dict)
    #: Keys under objects/ that do not name a digest: collection reports, never deletes.
    other: AreaTotal = field(default_factory=AreaTotal)
    #: Streams of unknown length being written (``uploads/``), and unfinished
    #: multipart uploads (their bytes are not listed, only their count).
    uploads: AreaTotal = field(default_factory=AreaTotal)
    pending_uploads: int = 0
    #: Leases of running (or crashed) collections.
    leases: AreaTotal = field(default_factory=AreaTotal)
    touch_records: AreaTotal = field(default_factory=AreaTotal)
    quarantine: AreaTotal = field(default_factory=AreaTotal)

    def to_dict(self) -> dict[str, Any]:
        def area(total: AreaTotal) -> dict[str, int]:
            return {"count": total.count, "bytes": total.bytes}

        result: dict[str, Any] = {
            "objects": area(self.objects),
            "other": area(self.other),
            "uploads": {**area(self.uploads), "pending_multipart": self.pending_uploads},
            "leases": area(self.leases),
            "touch_records": area(self.touch_records),
            "quarantine": area(self.quarantine),
        }
        if self.shards:
            result["shards"] = {name: area(total) for name, total in self.shards.items()}
        return result


def list_objects(
    store: Store, layout: Layout, shards: Sequence[str] | None = None, page_size: int = 1000
) -> Iterator[StoredObject]:
    """Every object (a key naming a digest), in digest order; only ``shards`` if given."""
    prefixes = (
        [layout.objects]
        if shards is None
        else [layout.objects_shard(s) for s in check_hex_shards(shards)]
    )
    for prefix in prefixes:
        for page in store.list_pages(prefix, page_size=page_size):
            for item in page.items:
                digest = layout.digest_of_key(item.key)
                if digest is not None:
                    yield StoredObject(digest, item.size, item.modified)


def summarize(
    store: Store, layout: Layout, *, by_shard: bool = False, page_size: int = 1000
) -> RepositorySummary:
    """The totals of every area of the repository: one listing of each."""
    summary = RepositorySummary()
    if by_shard:
        summary.shards = {digit: AreaTotal() for digit in HEX}
    for page in store.list_pages(layout.objects, page_size=page_size):
        for item in page.items:
            digest = layout.digest_of_key(item.key)
            if digest is None:
                summary.other.add(item.size)
                continue
            summary.objects.add(item.size)
            if by_shard:
                summary.shards[digest.hex[0]].add(item.size)
    areas = (
        (layout.uploads, summary.uploads),
        (layout.collections, summary.leases),
        (layout.touches, summary.touch_records),
        (layout.quarantine, summary.quarantine),
    )
    for prefix, total in areas:
        for page in store.list_pages(prefix, page_size=page_size):
            for item in page.items:
                if not item.key.endswith("/"):  # a gateway's directory marker, not ours
                    total.add(item.size)
    summary.pending_uploads = sum(1 for _ in store.list_uploads(layout.root))
    return summary
