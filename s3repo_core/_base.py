"""What every repository built on a ``Store`` does the same way, written once.

An implementation supplies its store, its layout, its windows and its keeper, and how
it writes bytes it has not yet verified (``_write_verified``); stat, ``put_file``'s
checks, batches, collection and transfers come from here.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ._batch import Batch
from ._digest import Digest, File
from ._errors import IntegrityError, InvalidArgumentError, NotExistError, NotSupportedError
from ._keeper import Keeper, Windows
from ._lease import LeaseTimes
from ._names import Layout
from ._protocol import enable_touch_records, read_marker
from ._repository import Body
from ._stat import SHOWN_MISSING
from ._store import Store
from ._survey import survey
from ._transfer import transfer

if TYPE_CHECKING:
    from ._contents import RepositorySummary, StoredObject
    from ._report import CollectReport
    from ._verify import VerifyReport
    from .inventory import Inventory
    from .liveset import Liveset

__all__ = ["StoreRepository", "as_digest"]


def as_digest(digest: Digest | str) -> Digest:
    return digest if isinstance(digest, Digest) else Digest.parse(digest)


def binary_destination(dest: object) -> BinaryIO:
    """``dest`` as an open binary file for ``get_file``; InvalidArgumentError otherwise."""
    if isinstance(dest, io.TextIOBase) or not callable(getattr(dest, "write", None)):
        raise InvalidArgumentError(
            f"dest is a path or a writable binary file, got {type(dest).__name__}"
        )
    return dest  # type: ignore[return-value]


class StoreRepository:
    """The shared half of ``S3Repository`` and ``FileRepository``."""

    store: Store
    layout: Layout
    windows: Windows
    keeper: Keeper
    concurrency: int
    #: Keys a LIST page asks for: S3's maximum. Tests make it small.
    list_page_size = 1000

    @property
    def url(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @property
    def prefix(self) -> str:
        return self.layout.prefix

    @property
    def refresh_window(self) -> timedelta:
        return self.windows.refresh_window

    @property
    def grace(self) -> timedelta:
        return self.windows.grace

    @property
    def settle(self) -> timedelta:
        return self.windows.settle

    @property
    def lease_times(self) -> LeaseTimes:
        return self.windows.lease

    def _missing(self, digest: Digest) -> NotExistError:
        """The error for an object the store does not have."""
        key = self.layout.object_key(digest)
        return NotExistError(f"{digest} is not in {self}", key=key, digest=digest)

    def _write_verified(self, file: File, body: Body) -> None:
        """Write ``body`` as ``file``, publishing nothing unless its bytes are ``file``'s."""
        raise NotImplementedError

    # -- the shared methods ------------------------------------------------------------

    def stat(self, digest: Digest | str) -> File:
        """The stored object's File. NotExistError if it (or the bucket) is missing."""
        digest = as_digest(digest)
        found = self.store.head(self.layout.object_key(digest))
        if found is None:
            raise self._missing(digest)
        return File(digest, found.size)

    def list_objects(self, shards: Sequence[str] | None = None) -> Iterator[StoredObject]:
        """Every stored object in digest order, a listing page at a time (see ``_contents``)."""
        from ._contents import list_objects

        return list_objects(self.store, self.layout, shards, self.list_page_size)

    def summary(self, *, by_shard: bool = False) -> RepositorySummary:
        """The totals of every area, from one listing of each (see ``_contents``)."""
        from ._contents import summarize

        return summarize(self.store, self.layout, by_shard=by_shard, page_size=self.list_page_size)

    def _put_file(self, file: File, body: Body) -> None:
        if not isinstance(file, File):
            raise InvalidArgumentError(f"put_file takes a File, got {type(file).__name__}")
        found = self.store.head(self.layout.object_key(file.digest))
        if found is not None:
            if found.size != file.size:
                raise IntegrityError(
                    f"{file.digest} is stored in {self} with {found.size} bytes, not {file.size}",
                    key=found.key,
                    digest=file.digest,
                )
            if self.keeper.keep(found):
                return
        self._write_verified(file, body)

    def _batch(self) -> Batch:
        self.keeper.page_size = self.list_page_size
        return Batch(
            self.store,
            self.layout,
            self.keeper,
            write_new=self._write_verified,
            concurrency=self.concurrency,
            page_size=self.list_page_size,
        )

    def _put_files(
        self,
        paths: Iterable[str | os.PathLike[str]],
        on_hashed: Callable[[Path, File], None] | None,
        on_stored: Callable[[Path, File], None] | None,
        on_written: Callable[[Path, File], None] | None,
    ) -> list[File]:
        return self._batch().run(paths, on_hashed, on_stored, on_written)

    def server_now(self) -> datetime:
        """The store's clock (on S3, from the Date header of a cheap LIST): what object
        ages, and so collection thresholds, are measured by."""
        return self.store.server_now(self.layout.collections)

    def keep(self, files: Iterable[File | Digest | str]) -> list[File]:
        """Keep stored objects as a put of each would, without their bytes.

        On return the guarantee of ``Repository`` holds for each as if it had been put
        when this call began: what a record manifest writer does when its record would
        come too late (see ``records``, which counts its deadline from then). Costs
        what a ``put_files`` of stored content costs: a listing, and one touch record or
        a refresh each for old objects. Returns the File of each distinct object, in the
        order given. NotExistError if one is
        missing (nothing is kept); IntegrityError if a File's size is not the stored one.
        """
        sizes: dict[Digest, int | None] = {}
        for item in files:
            if isinstance(item, File):
                sizes[item.digest] = item.size
            else:
                sizes.setdefault(as_digest(item), None)
        key_of = {digest: self.layout.object_key(digest) for digest in sizes}
        if not key_of:
            return []
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-keep") as pool:
            seen = survey(
                self.store, self.layout, sorted(key_of.values()), self.list_page_size, pool.map
            )
        missing = [digest for digest, key in key_of.items() if seen[key] is None]
        if missing:
            shown = ", ".join(map(str, missing[:SHOWN_MISSING]))
            more = " ..." if len(missing) > SHOWN_MISSING else ""
            raise NotExistError(
                f"{len(missing)} of {len(key_of)} digests are not in {self}: {shown}{more}",
                key=key_of[missing[0]],
                digest=missing[0],
            )
        for digest, key in key_of.items():
            sighting = seen[key]
            assert sighting is not None
            if sizes[digest] not in (None, sighting.stat.size):
                raise IntegrityError(
                    f"{digest} is stored in {self} with {sighting.stat.size} bytes, "
                    f"not {sizes[digest]}",
                    key=key,
                    digest=digest,
                )
        self.keeper.page_size = self.list_page_size
        kept = self.keeper.keep_fresh([s for s in seen.values() if s is not None])
        if kept.vanished:
            # Deleted while it was being kept: only its bytes could bring it back.
            vanished = next(d for d, key in key_of.items() if key == kept.vanished[0])
            raise self._missing(vanished)
        return [File(digest, seen[key].stat.size) for digest, key in key_of.items()]  # type: ignore[union-attr]

    def verify(
        self,
        files: Iterable[File | Digest | str] | None = None,
        *,
        shards: list[str] | None = None,
        sample: float | None = None,
        quarantine: bool = False,
        on_checked: Callable[[Digest, int], None] | None = None,
    ) -> VerifyReport:
        """Hash stored objects again; what does not match is reported, not raised.

        ``files=None`` checks every object under ``objects/``, streamed from the
        listing a page at a time (one collected meanwhile is skipped); otherwise those
        named, each once: a digest not stored is *missing*, and a File's size is
        compared without reading (stored shorter: *truncated*; longer: *corrupt*).
        ``shards`` (names as :func:`shard_names` gives; 'other' and 'uploads' hold no
        objects to check) restricts either; ``sample`` keeps each object with that
        probability, in (0, 1]. ``concurrency`` objects are read at a time, in chunks.
        A mismatch is read again (and, on S3, compared with the server's own SHA-256
        where it has one) before it is reported: bytes damaged in transit are
        *unconfirmed*, not corrupt.

        ``quarantine`` moves each corrupt or truncated object, so confirmed, to
        ``quarantine/`` (which collection purges after the grace), so that the next put
        of its bytes stores it again; under a collection lease on its shard
        (ConflictError if a collection holds it), and only if it is still the version
        verified (else it is *unconfirmed*). ``on_checked(digest, bytes read)`` is
        called per object checked, from worker threads. InvalidArgumentError for a
        bad shard, sample or digest (a digest when it is reached).
        """
        from ._verify import verify_objects

        return verify_objects(
            self.store,
            self.layout,
            self.url,
            files,
            windows=self.windows,
            concurrency=self.concurrency,
            page_size=self.list_page_size,
            copy=self._copy_key,
            shards=shards,
            sample=sample,
            quarantine=quarantine,
            on_checked=on_checked,
        )

    def _copy_key(self, src_key: str, dst_key: str, size: int) -> None:
        """A copy within the store, as quarantine moves an object."""
        self.store.copy(src_key, dst_key)

    def collect(
        self,
        liveset: Liveset,
        *,
        threshold: datetime | None = None,
        dry_run: bool = False,
        shards: list[str] | None = None,
        keep_keys: bool = False,
        raise_on_errors: bool = True,
        inventory: Inventory | None = None,
    ) -> CollectReport:
        """Delete every object that is not in ``liveset`` and not modified after ``threshold``.

        ``threshold`` defaults to ``grace`` ago on the store's clock and may not be
        newer (InvalidArgumentError). Keys under ``objects/`` that are not digests are
        reported, never deleted. Uploads under ``uploads/``, unfinished uploads (S3
        multipart uploads, a directory's temporary files) and objects :meth:`verify`
        moved to ``quarantine/`` older than the threshold are removed too. ``dry_run``
        deletes nothing and reports exactly what would be deleted; ``shards`` restricts
        the run to some of :func:`shard_names` (default: all), so that workers can
        share a repository. ``keep_keys`` lists the collected keys in the report.

        ``inventory``, an S3 Inventory report of the repository's bucket (see
        ``s3repo_core.inventory``), proposes the candidates instead of a LIST of each
        shard; each is looked at again by a LIST of its page's range before its delete.

        Raises ConflictError if another collection holds one of the shards, and, unless
        ``raise_on_errors`` is False, CollectionFailedError (with the report) if the
        store refused to delete some keys. The guarantee of ``Repository`` holds for
        every object a writer was told is stored.
        """
        from ._collect import collect  # with numpy: only collection needs it

        listing = None
        if inventory is not None:
            bucket = getattr(self, "bucket", None)
            if bucket is None:
                raise NotSupportedError(f"{self.url} is not in S3: an S3 Inventory lists S3")
            if inventory.source_bucket != bucket:
                raise InvalidArgumentError(
                    f"inventory {inventory.location} lists bucket {inventory.source_bucket!r}, "
                    f"not {bucket!r}"
                )
            listing = partial(inventory.pages, client=getattr(self, "client", None))
        return collect(
            self.store,
            self.layout,
            self.url,
            liveset,
            windows=self.windows,
            concurrency=self.concurrency,
            threshold=threshold,
            dry_run=dry_run,
            shards=shards,
            keep_keys=keep_keys,
            raise_on_errors=raise_on_errors,
            listing=listing,
        )

    def enable_touch_records(self) -> None:
        """State that every collector of this repository reads touch records.

        Writers then keep stored content with one touch record per batch (see
        ``_touches``) instead of a refresh per object. Only the operator knows that no
        older s3repo collects the repository, so nothing calls this on its own.
        """
        enable_touch_records(self.store, self.layout)

    def touch_records_enabled(self) -> bool:
        """Whether the protocol marker lets writers use touch records."""
        return read_marker(self.store, self.layout).touch_records

    def write_to(self, digest: Digest | str, url: str) -> None:
        """Copy the object to the repository at ``url``.

        Between two ``s3r://`` repositories on the same endpoint the copy is
        server-side; otherwise the bytes stream through this process and are verified.
        Raises NotExistError if the object is missing here, NotSupportedError for a URL
        scheme no repository is registered for.
        """
        transfer(as_digest(digest), self, url)  # type: ignore[arg-type]

    def read_from(self, digest: Digest | str, url: str) -> None:
        """Copy the object from the repository at ``url`` into this one (see write_to)."""
        transfer(as_digest(digest), url, self)  # type: ignore[arg-type]
