"""Verification: stored objects hashed again, and what does not match its digest found.

An object is read as ``get`` reads it (``Store.open``, in chunks, a broken connection
resumed where it stopped and pinned to the version read), hashed and counted; but a
mismatch is a finding, not an error. Before one is reported it is looked at again: a
fresh read of the version a HEAD names and, where the store keeps its own SHA-256 of
the bytes (S3's full-object ChecksumSHA256), that. A read damaged in transit then shows
as *unconfirmed*, not as corrupt.

Quarantine moves a corrupt object out of ``objects/``, so that the next put of the
right bytes stores it again (a put that finds a key of the right size keeps it). It
does to the key what a collection does, under a collection lease on the object's
shard: writers that find content while a lease is live look again after ``settle`` and
write back what vanished, so a put racing the move repairs the object. The bytes are
copied to ``quarantine/<digest>/<time>`` first (collection purges them after the
grace), and the key is removed only if it is still the version verified
(``Store.delete_unchanged``): good bytes a writer put in its place stay.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from ._contents import list_objects
from ._digest import Digest, File
from ._errors import (
    IntegrityError,
    InvalidArgumentError,
    NotExistError,
    RepositoryError,
    UnavailableError,
)
from ._lease import take_lease
from ._names import Layout
from ._shards import OTHER, UPLOADS, check_shards
from ._store import Stat, Store

if TYPE_CHECKING:
    from ._keeper import Windows

__all__ = ["OnChecked", "VerifyReport", "verify_objects"]

#: ``on_checked(digest, bytes read for it)``, per object checked, from worker threads.
OnChecked = Callable[[Digest, int], None]
#: ``copy(src_key, dst_key, size)``: the repository's server-side copy of a key.
Copy = Callable[[str, str, int], None]

#: Bytes hashed at a time: an object is never held whole.
CHUNK = 1024 * 1024
#: How often one read is resumed after its connection broke.
MAX_RESUMES = 3
#: Objects queued or being checked per worker: the listing is read no further ahead.
IN_FLIGHT_PER_WORKER = 2
#: Bad digests the summary names.
SHOWN = 3


@dataclass(frozen=True)
class VerifyReport:
    """What a verification found. Each list is sorted, each digest in at most one of
    ``corrupt``, ``truncated``, ``missing`` and ``unconfirmed``; ``quarantined`` lists
    those of ``corrupt`` and ``truncated`` that were moved to ``quarantine/`` (they are
    still failures: their bytes must be put again)."""

    #: Objects looked at: listed (or asked for) and sampled, less those collected
    #: between the listing and their read.
    checked: int = 0
    #: Their bytes do not hash to the key (or there are more than the File says).
    corrupt: list[Digest] = field(default_factory=list)
    #: Stored shorter than the size the caller's File says.
    truncated: list[Digest] = field(default_factory=list)
    #: Asked for by digest and not stored.
    missing: list[Digest] = field(default_factory=list)
    #: Moved out of ``objects/`` (``quarantine=True``).
    quarantined: list[Digest] = field(default_factory=list)
    #: A read mismatched, but a second read or the server's checksum says the stored
    #: bytes are the digest's (a flip in transit); or the object changed under the
    #: check, so that nothing could be confirmed.
    unconfirmed: list[Digest] = field(default_factory=list)
    #: Object bytes read, second reads included.
    bytes_read: int = 0
    #: Seconds the verification took.
    duration: float = 0.0

    @property
    def failed(self) -> bool:
        """Whether an object is corrupt, truncated or missing."""
        return bool(self.corrupt or self.truncated or self.missing)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able values, digests as text."""
        return {
            "checked": self.checked,
            "corrupt": [str(d) for d in self.corrupt],
            "truncated": [str(d) for d in self.truncated],
            "missing": [str(d) for d in self.missing],
            "quarantined": [str(d) for d in self.quarantined],
            "unconfirmed": [str(d) for d in self.unconfirmed],
            "bytes_read": self.bytes_read,
            "duration": self.duration,
        }

    def summary(self) -> str:
        """One line of figures; a second naming the first bad digests, if any."""
        counts = [
            (len(self.corrupt), "corrupt"),
            (len(self.truncated), "truncated"),
            (len(self.missing), "missing"),
            (len(self.quarantined), "quarantined"),
            (len(self.unconfirmed), "unconfirmed (good on a second look)"),
        ]
        found = ", ".join(f"{n} {what}" for n, what in counts if n)
        line = (
            f"checked {self.checked} object{'' if self.checked == 1 else 's'}, "
            f"{self.bytes_read:,} bytes read, in "
            f"{self.duration:.1f}s: {found or 'every one matches its digest'}"
        )
        bad = [*self.corrupt, *self.truncated, *self.missing]
        if not bad:
            return line
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        return f"{line}\n  failed: {', '.join(map(str, bad[:SHOWN]))}{more}"

    def merge(self, other: VerifyReport) -> VerifyReport:
        """One report for two shards' reports (as an orchestrator aggregates them):
        counts added, lists joined, the duration of the longer (shards run side by side)."""
        return VerifyReport(
            checked=self.checked + other.checked,
            corrupt=sorted({*self.corrupt, *other.corrupt}, key=str),
            truncated=sorted({*self.truncated, *other.truncated}, key=str),
            missing=sorted({*self.missing, *other.missing}, key=str),
            quarantined=sorted({*self.quarantined, *other.quarantined}, key=str),
            unconfirmed=sorted({*self.unconfirmed, *other.unconfirmed}, key=str),
            bytes_read=self.bytes_read + other.bytes_read,
            duration=max(self.duration, other.duration),
        )


class _Finding(Enum):
    OK = "ok"
    CORRUPT = "corrupt"
    TRUNCATED = "truncated"
    MISSING = "missing"
    UNCONFIRMED = "unconfirmed"
    #: Listed, then gone before it was read (collected): not checked at all.
    GONE = "gone"


@dataclass(frozen=True)
class _Item:
    """One object to check."""

    digest: Digest
    key: str
    #: The size the caller's File says; None for a digest or a listed key.
    size: int | None
    #: Named by the caller: its absence is a finding, not a collection's doing.
    asked: bool


@dataclass(frozen=True)
class _Read:
    """One read of a key."""

    #: The size the store gave for it.
    size: int
    #: Bytes read.
    count: int
    #: The digest of the bytes, or None if they were not all read (a size that
    #: disagrees, a read that came back short or long, a server checksum that failed).
    digest: Digest | None


def _replaced(error: RepositoryError) -> bool:
    """Whether a read pinned to a version failed because the key holds another now."""
    return error.code in ("PreconditionFailed", "412")


def _by_size(expected: int, stored: int) -> _Finding:
    return _Finding.TRUNCATED if stored < expected else _Finding.CORRUPT


class _Verifier:
    """Checks objects one at a time, from any thread, and tallies the findings."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        name: str,
        windows: Windows,
        *,
        quarantine: bool,
        copy: Copy,
        on_checked: OnChecked | None,
    ) -> None:
        self.store = store
        self.layout = layout
        self.name = name
        self.windows = windows
        self.quarantine = quarantine
        self.copy = copy
        self.on_checked = on_checked
        self._lock = threading.Lock()
        self._checked = 0
        self._bytes = 0
        self._found: dict[_Finding, list[Digest]] = {finding: [] for finding in _Finding}
        self._quarantined: list[Digest] = []
        #: One move at a time: two in one shard would each find the other's lease and
        #: refuse (ConflictError), and a corrupt object is rare.
        self._moving = threading.Lock()

    def check(self, item: _Item) -> None:
        finding, count, moved = self._examine(item)
        with self._lock:
            self._bytes += count
            if finding is _Finding.GONE:
                return
            self._checked += 1
            if finding is not _Finding.OK:  # only findings are kept, not every digest
                self._found[finding].append(item.digest)
            if moved:
                self._quarantined.append(item.digest)
        if self.on_checked is not None:
            self.on_checked(item.digest, count)

    def report(self, duration: float) -> VerifyReport:
        found = {finding: sorted(digests) for finding, digests in self._found.items()}
        return VerifyReport(
            checked=self._checked,
            corrupt=found[_Finding.CORRUPT],
            truncated=found[_Finding.TRUNCATED],
            missing=found[_Finding.MISSING],
            quarantined=sorted(self._quarantined),
            unconfirmed=found[_Finding.UNCONFIRMED],
            bytes_read=self._bytes,
            duration=duration,
        )

    # -- one object -----------------------------------------------------------------------

    def _examine(self, item: _Item) -> tuple[_Finding, int, bool]:
        """(what was found, bytes read, whether it was quarantined)."""
        absent = _Finding.MISSING if item.asked else _Finding.GONE
        first = self._read(item.key, item.size)
        if first is None:
            return absent, 0, False
        if first.digest == item.digest:
            return _Finding.OK, first.count, False
        if item.size is not None and first.size != item.size and not self.quarantine:
            return _by_size(item.size, first.size), first.count, False
        # Look again, at the version a HEAD names: the first read may have been damaged
        # on its way, or (a File's size) not been a read at all.
        seen = self.store.head(item.key)
        if seen is None:
            return absent, first.count, False
        try:
            second = self._read(item.key, None, seen.etag)
        except RepositoryError as error:
            if not _replaced(error):
                raise
            return _Finding.UNCONFIRMED, first.count, False  # rewritten meanwhile
        if second is None:
            return absent, first.count, False
        count = first.count + second.count
        if second.digest == item.digest or self.store.server_sha256(item.key) == item.digest.raw:
            # The stored bytes are the digest's: the first read was damaged in transit,
            # or the caller's File has the wrong size.
            return _Finding.UNCONFIRMED, count, False
        finding = _Finding.CORRUPT
        if item.size is not None and seen.size != item.size:
            finding = _by_size(item.size, seen.size)
        if not self.quarantine:
            return finding, count, False
        with self._moving:
            moved = self._move_aside(item, seen)
        if moved is None:
            return _Finding.UNCONFIRMED, count, False  # changed since it was verified
        return finding, count, moved

    def _read(self, key: str, expected: int | None, etag: str | None = None) -> _Read | None:
        """Read and hash ``key`` (the version ``etag``, if given); None if it is missing.

        A store size other than ``expected`` is returned without reading. A broken
        connection is resumed from where it stopped, pinned to the version first read,
        a few times; an IntegrityError of the read (a store that checks bytes of its own
        accord found them damaged) is a mismatch. The read is ``hashed``: the SHA-256
        here checks every byte, so botocore computes no CRC of them.
        """
        try:
            reader = self.store.open(key, if_match=etag, hashed=True)
        except NotExistError:
            return None
        size = reader.size
        if expected is not None and size != expected:
            reader.close()
            return _Read(size, 0, None)
        pin = etag or reader.etag
        hasher = hashlib.sha256()
        count = 0
        resumes = MAX_RESUMES
        try:
            while True:
                try:
                    chunk = reader.read(CHUNK)
                except IntegrityError:
                    return _Read(size, count, None)
                except UnavailableError:
                    if resumes <= 0 or count >= size:
                        raise
                    resumes -= 1
                    reader.close()
                    try:
                        reader = self.store.open(key, count, if_match=pin, hashed=True)
                    except NotExistError:
                        return None
                    except RepositoryError as error:
                        if _replaced(error):
                            return _Read(size, count, None)
                        raise
                    continue
                if not chunk:
                    break
                hasher.update(chunk)
                count += len(chunk)
                if count > size:
                    return _Read(size, count, None)
        finally:
            reader.close()
        return _Read(size, count, Digest(hasher.digest()) if count == size else None)

    def _move_aside(self, item: _Item, seen: Stat) -> bool | None:
        """Move the object, still ``seen``, to ``quarantine/``: True once it is out of
        ``objects/``, False if it vanished first (nothing moved), None if it changed.

        Under a lease on every shard that holds the digest (of each width, so that a
        collection of any shards sees it; ConflictError if one holds them), and the
        delete is sent only while the lease is sure to outlive it by ``settle``, as a
        collection's deletes are.
        """
        store, layout, digest = self.store, self.layout, item.digest
        shards = [digest.hex[:width] for width in range(1, 5)]
        lease = take_lease(
            store, layout, self.name, shards, self.windows.lease, {"quarantine": str(digest)}
        )
        try:
            target = layout.new_quarantine_key(digest, seen.now)
            try:
                self.copy(item.key, target, seen.size)
            except NotExistError:
                return False
            lease.wait_live_for(self.windows.settle.total_seconds())
            if store.delete_unchanged(item.key, seen):
                return True
            if store.head(item.key) is None:
                return True  # gone all the same (a delete whose answer was lost)
            store.delete_quietly(target)
            return None
        finally:
            lease.release()


# -- what to check --------------------------------------------------------------------------


def _check_sample(sample: float | None) -> None:
    if sample is None:
        return
    if isinstance(sample, bool) or not isinstance(sample, int | float) or not 0 < sample <= 1:
        raise InvalidArgumentError(f"sample is a fraction in (0, 1], not {sample!r}")


def _listed(
    store: Store, layout: Layout, shards: list[str] | None, page_size: int
) -> Iterator[_Item]:
    """Every object of ``shards`` (None: all), a listing page at a time."""
    for stored in list_objects(store, layout, shards, page_size):
        yield _Item(stored.digest, layout.object_key(stored.digest), None, asked=False)


def _given(
    files: Iterable[File | Digest | str], layout: Layout, shards: list[str] | None
) -> Iterator[_Item]:
    """The objects ``files`` names, each once, in ``shards`` if given."""
    prefixes = None if shards is None else tuple(shards)
    seen: set[Digest] = set()
    for entry in files:
        size: int | None = None
        if isinstance(entry, File):
            digest, size = entry.digest, entry.size
        elif isinstance(entry, Digest):
            digest = entry
        else:
            digest = Digest.parse(entry)
        if digest in seen or (prefixes is not None and not digest.hex.startswith(prefixes)):
            continue
        seen.add(digest)
        yield _Item(digest, layout.object_key(digest), size, asked=True)


def _run(items: Iterator[_Item], work: Callable[[_Item], None], concurrency: int) -> None:
    """``work`` on each item, ``concurrency`` at a time, taking items only as workers free
    up; the first error stops the run and is raised once the workers are done."""
    slots = threading.BoundedSemaphore(IN_FLIGHT_PER_WORKER * concurrency)
    errors: list[BaseException] = []

    def done(future: Future[None]) -> None:
        slots.release()
        if not future.cancelled() and (error := future.exception()) is not None:
            errors.append(error)

    pool = ThreadPoolExecutor(concurrency, thread_name_prefix="s3repo-verify")
    try:
        for item in items:
            slots.acquire()
            if errors:
                slots.release()
                break
            pool.submit(work, item).add_done_callback(done)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if errors:
        raise errors[0]


def verify_objects(
    store: Store,
    layout: Layout,
    name: str,
    files: Iterable[File | Digest | str] | None,
    *,
    windows: Windows,
    concurrency: int,
    page_size: int,
    copy: Copy,
    shards: list[str] | None = None,
    sample: float | None = None,
    quarantine: bool = False,
    on_checked: OnChecked | None = None,
) -> VerifyReport:
    """A repository's ``verify`` (see ``StoreRepository.verify``), named ``name``."""
    if isinstance(files, str | Digest | File):
        raise InvalidArgumentError("files is an iterable of Files or digests: wrap one in [...]")
    _check_sample(sample)
    hexes = None
    if shards:
        hexes = [s for s in check_shards(shards) if s not in (OTHER, UPLOADS)]
    started = time.monotonic()
    # A missing bucket is an error, before any object is called missing.
    store.server_now(layout.collections)
    verifier = _Verifier(
        store, layout, name, windows, quarantine=quarantine, copy=copy, on_checked=on_checked
    )
    items = (
        _listed(store, layout, hexes, page_size) if files is None else _given(files, layout, hexes)
    )
    if sample is not None:
        draw = random.Random()
        items = (item for item in items if draw.random() < sample)
    _run(items, verifier.check, concurrency)
    return verifier.report(time.monotonic() - started)
