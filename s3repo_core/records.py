"""Record manifests: "these objects, just stored, are live", written promptly.

A record names objects that were all stored before it was written, and never changes,
so unlike a snapshot its age does not hold a collection's threshold back (see
``manifest`` and ``_planning``): a collection planned ``grace`` after a record was
written may delete whatever is older than ``grace``, except what the records it reads
name. That is safe only if no collection can plan between a store and its record
without also keeping the store's objects through its threshold.

The guarantee of ``Repository`` says what keeps them: once a put (or a ``keep``)
returns, no collection that starts within ``grace - refresh_window`` deletes the
object. So a record must land within ``grace - refresh_window`` of the earliest store
it names, counted from a ``time.monotonic()`` taken before that store began (this
clock runs at the store's rate, and starting early only makes the bound stricter).
:func:`write_record_manifest` checks it twice:

- before writing: past the bound, it keeps every object again (``repo.keep``: a
  listing, and a touch record or a refresh each for the old ones) and counts from
  when that began;
- after writing: if the upload itself took it past the bound, a collection may have
  planned without the record, so it keeps the objects again, now that the record is
  there for every later plan; an object that is gone by then raises NotExistError.

    started = time.monotonic()
    digest = repo.put(data)
    write_record_manifest(
        repo, "s3://bucket/records/x.parquet", [File(digest, len(data))], started=started
    )
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

from ._digest import File
from ._errors import InvalidArgumentError
from ._keeper import CLOCK_RESOLUTION
from .manifest import ManifestInfo, ManifestRow, write_manifest

__all__ = ["Recorded", "record_deadline", "write_record_manifest"]


class Recorded(Protocol):
    """What writing a record needs of a repository."""

    @property
    def grace(self) -> timedelta: ...

    @property
    def refresh_window(self) -> timedelta: ...

    def keep(self, files: Sequence[File]) -> list[File]: ...


def record_deadline(repo: Recorded) -> float:
    """Seconds after the earliest store by which its record must have landed.

    ``grace - refresh_window``, less the store clock's resolution (Last-Modified is
    truncated to the second)."""
    bound = (repo.grace - repo.refresh_window - CLOCK_RESOLUTION).total_seconds()
    if bound <= 0:
        raise InvalidArgumentError(
            f"grace {repo.grace.total_seconds():g} s leaves no time to write a record after "
            f"refresh_window {repo.refresh_window.total_seconds():g} s"
        )
    return bound


def write_record_manifest(
    repo: Recorded,
    dest: str | os.PathLike[str],
    files: Sequence[File | ManifestRow],
    *,
    started: float,
    source: str = "",
    created_by: str = "s3repo",
    labels: Mapping[str, str] | None = None,
    client: Any = None,
    on_late: Callable[[str], None] | None = None,
) -> ManifestInfo:
    """Write a record manifest at ``dest`` naming ``files``, stored since ``started``.

    ``started`` is a ``time.monotonic()`` taken before the first of ``files`` began to
    be stored (or kept). ``source`` goes in the row of each File (a ManifestRow has its
    own); ``labels`` in the file's
    metadata (what retention groups records by). ``on_late``, if given, is called with
    a short reason each time the objects had to be kept again. Raises what
    ``repo.keep`` raises if an object is missing, and what ``write_manifest`` raises.
    """
    if not files:
        raise InvalidArgumentError("a record names at least one object")
    deadline = record_deadline(repo)
    rows = list(
        dict.fromkeys(
            item if isinstance(item, ManifestRow) else ManifestRow(item.digest, item.size, source)
            for item in files
        )
    )
    objects = [File(row.digest, row.size) for row in rows]
    if time.monotonic() - started > deadline:
        if on_late is not None:
            on_late(f"stored more than {deadline:g} s ago: kept again before the record")
        started = time.monotonic()
        repo.keep(objects)
    # Stamped by the store's clock, as retention judges ages by it (and as objects are).
    server_now = getattr(repo, "server_now", None)
    created_at = server_now() if callable(server_now) else None
    info = write_manifest(
        dest,
        rows,
        created_by=created_by,
        created_at=created_at,
        kind="record",
        labels=labels,
        client=client,
    )
    if time.monotonic() - started > deadline:
        # A collection may have planned between the deadline and the record's landing;
        # every plan from now on reads the record, so keeping them once more suffices.
        if on_late is not None:
            on_late(f"the record landed more than {deadline:g} s after the store: kept again")
        repo.keep(objects)
    return info
