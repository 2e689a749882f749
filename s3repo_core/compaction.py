"""Many manifests into one: merging keeps what its inputs claim, compacting re-states it.

Collection reads every manifest it is given, so a source that writes a snapshot a day,
or an IO manager that writes a record per output, leaves a location that takes longer
to read each day. Two ways to make one file of many, which differ in what the result
may claim (see ``s3repo_core.manifest`` for the kinds):

- :func:`merge_manifests` joins manifests of one kind and claims no more than they
  did: its ``created_at`` is the oldest of theirs, so a merged snapshot holds the
  collection threshold back as far as its oldest input did, and merged records keep
  their oldest age;
- :func:`compact_manifests` joins manifests of any kinds into a *snapshot* stamped
  when its reading began, or with its oldest snapshot input's time if that is older:
  a record's objects were all stored by then, but a snapshot's source may have stored
  more since its own time, which only its next snapshot names.

Each distinct digest is written once, as its first input names it. Neither removes
its inputs: a caller that does so once the result is written replaces many files with
one and keeps every object live (records written while the inputs were read are not
among them, so must not be removed).

Records are the source of truth for retention, which decides on each of them, so an
IO manager's records are never replaced. :func:`compact_records` makes a *copy* of the
ones retention kept, for collection to read instead of each of them: a snapshot
stamped when their listing began (so its time bounds the threshold, as any
snapshot's), labelled with that time. A record the listing may have missed (a PUT in
flight as it passed) or written since is not in the copy:
:func:`records_modified_since` finds those by their Last-Modified, from the grace
before the listing on, and they are read as they are. A copy is made again after
each retention, so that a retired record's objects do not stay live inside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from ._errors import InvalidArgumentError
from ._inorder import in_order
from .manifest import (
    Manifest,
    ManifestInfo,
    ManifestKind,
    ManifestRow,
    _expand,
    _expand_modified,
    read_manifest,
    remove_manifest,
    write_manifest,
)

__all__ = [
    "RECORDS_LISTED_AT",
    "RecordsCopy",
    "compact_manifests",
    "compact_records",
    "copy_records",
    "merge_manifests",
    "records_modified_since",
]

#: The label of a compacted copy of records: when the listing of the records it holds
#: began, by the store's clock (ISO 8601).
RECORDS_LISTED_AT = "s3repo.records-listed-at"
#: Records read at a time while a copy is made: they are small, so their latency, not
#: their bytes, is what a compaction of many waits on.
READ_AHEAD = 16


Sources = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


def merge_manifests(
    srcs: Sources,
    dest: str | os.PathLike[str],
    *,
    created_by: str = "s3repo merge",
    client: Any = None,
) -> ManifestInfo:
    """Write at ``dest`` one manifest of every digest the manifests under ``srcs`` name
    (locations as :func:`~s3repo_core.read_liveset` takes them), of their kind, with
    the oldest ``created_at`` among them and the labels they all share.

    InvalidArgumentError if they are of different kinds (a snapshot claims a whole
    liveset, a record only its objects: one file cannot say both), and whatever
    reading them raises (fail closed, as a collection reads them); nothing is
    written then.
    """
    manifests = _read_all(srcs, client, "merge")
    kinds: set[ManifestKind] = {manifest.kind for manifest in manifests}
    if len(kinds) > 1:
        snapshots = [m.location for m in manifests if m.kind == "snapshot"]
        records = [m.location for m in manifests if m.kind == "record"]
        raise InvalidArgumentError(
            f"cannot merge snapshots ({_some(snapshots)}) with records ({_some(records)}): "
            "compact them into a snapshot instead"
        )
    (kind,) = kinds
    return write_manifest(
        dest,
        _distinct_rows(manifests),
        created_by=created_by,
        created_at=min(manifest.created_at for manifest in manifests),
        kind=kind,
        labels=_shared_labels(manifests),
        client=client,
    )


def compact_manifests(
    srcs: Sources,
    dest: str | os.PathLike[str],
    *,
    created_by: str = "s3repo compact",
    client: Any = None,
) -> ManifestInfo:
    """Write at ``dest`` one snapshot of every digest the manifests under ``srcs`` name,
    of any kinds, stamped with the time this call began reading them (this machine's
    clock, as :func:`~s3repo_core.write_manifest` stamps) or the oldest input
    snapshot's, whichever is older. Fails closed as :func:`merge_manifests` does."""
    began = datetime.now(UTC)
    manifests = _read_all(srcs, client, "compact")
    snapshots = (manifest.created_at for manifest in manifests if manifest.kind == "snapshot")
    return write_manifest(
        dest,
        _distinct_rows(manifests),
        created_by=created_by,
        created_at=min([began, *snapshots]),
        kind="snapshot",
        client=client,
    )


def compact_records(
    records: Iterable[str | os.PathLike[str]],
    dest: str | os.PathLike[str],
    *,
    listed_at: datetime,
    created_by: str = "s3repo compact-records",
    client: Any = None,
) -> ManifestInfo:
    """Write at ``dest`` one snapshot of every digest ``records`` (record manifests,
    each a file or ``s3://`` key) name, stamped ``listed_at``: when the listing that
    found them began, by the store's clock. See the module docstring for how a
    collection reads it, with :func:`records_modified_since`.

    The records are read :data:`READ_AHEAD` at a time, in order; their rows are sorted
    by digest in bounded memory as the copy is written (a digest named by several
    records is written once per record). InvalidArgumentError if an input is not a
    record, and whatever reading one raises; nothing is written then."""
    when = listed_at.astimezone(UTC)

    def rows() -> Iterator[ManifestRow]:
        read = partial(read_manifest, client=client)
        for manifest in in_order(read, records, READ_AHEAD, "s3repo-compact"):
            if manifest.kind != "record":
                raise InvalidArgumentError(
                    f"{manifest.location} is a {manifest.kind}, not a record: only records "
                    "are copied (compact_manifests restates snapshots)"
                )
            yield from manifest

    return write_manifest(
        dest,
        rows(),
        created_by=created_by,
        created_at=when,
        kind="snapshot",
        labels={RECORDS_LISTED_AT: when.isoformat()},
        client=client,
    )


def records_modified_since(srcs: Sources, since: datetime, *, client: Any = None) -> list[str]:
    """The manifests under ``srcs`` (as :func:`~s3repo_core.read_liveset` takes them; a
    folder with none gives none) last modified at or after ``since``: by S3's
    Last-Modified, or a file's mtime. One listing, no manifest read."""
    return [str(loc) for loc, modified in _expand_modified(srcs, client) if modified >= since]


@dataclass(frozen=True)
class RecordsCopy:
    """What a collection reads of the records once they are copied (see
    :func:`copy_records`)."""

    #: The copy of the kept records, or None if retention kept none.
    copy: ManifestInfo | None
    #: Records modified within the grace before the listing, or since: read as they are.
    recent: tuple[str, ...]
    #: Earlier copies removed.
    removed: int

    @property
    def locations(self) -> list[str]:
        """The manifests that stand for the records in a collection's liveset."""
        return ([self.copy.location] if self.copy is not None else []) + list(self.recent)


def copy_records(
    kept: Sequence[str],
    records: str,
    folder: str,
    *,
    listed_at: datetime,
    grace: timedelta,
    client: Any = None,
) -> RecordsCopy:
    """After retention: copy the records it ``kept`` (found by a listing of ``records``
    that began at ``listed_at``) into one snapshot in ``folder``, find the records
    modified from ``grace`` before ``listed_at`` on, and remove the earlier copies.

    The new copy is written before any earlier one is removed, so that a crash between
    leaves two (the next call removes both); a collection planned against an earlier
    copy that is then removed fails closed (NotExistError) and deletes nothing. The
    grace bounds how long a record's PUT may have been in flight as the listing passed
    it, as it bounds every write the repository protects."""
    if not folder.endswith(("/", os.sep)):
        raise InvalidArgumentError(f"the copies' folder {folder!r} must end with '/'")
    if not folder.startswith("s3://"):
        os.makedirs(folder, exist_ok=True)
    earlier = [str(loc) for loc, _ in _expand_modified(folder, client)]
    copy = None
    if kept:
        stamp = f"{listed_at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}"
        copy = compact_records(
            kept, f"{folder}records-{stamp}.parquet", listed_at=listed_at, client=client
        )
    recent = records_modified_since(records, listed_at - grace, client=client)
    removed = 0
    for location in earlier:
        if copy is None or location != copy.location:
            remove_manifest(location, client=client)
            removed += 1
    return RecordsCopy(copy, tuple(recent), removed)


def _read_all(srcs: Sources, client: Any, what: str) -> list[Manifest]:
    """Every manifest under ``srcs``, validated in full before anything is written."""
    if not isinstance(srcs, str | os.PathLike):
        srcs = list(srcs)
        if not srcs:
            raise InvalidArgumentError(f"nothing to {what}: give at least one manifest location")
    return [read_manifest(str(location), client=client) for location in _expand(srcs, client)]


def _distinct_rows(manifests: list[Manifest]) -> Iterator[ManifestRow]:
    seen: set[bytes] = set()
    for manifest in manifests:
        for row in manifest:
            if row.digest.raw not in seen:
                seen.add(row.digest.raw)
                yield row


def _shared_labels(manifests: list[Manifest]) -> Mapping[str, str]:
    first, *others = (manifest.labels for manifest in manifests)
    return {
        name: value
        for name, value in first.items()
        if all(other.get(name) == value for other in others)
    }


def _some(locations: list[str]) -> str:
    shown = ", ".join(locations[:3])
    return shown if len(locations) <= 3 else f"{shown} and {len(locations) - 3} more"
