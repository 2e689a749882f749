"""Downloading one object into a file: ranges in parallel, resumed, verified in order.

Each range is read in chunks and written at its offset as it arrives; a range whose
connection breaks or whose body comes back short is asked for again from where it
stopped, pinned to the ETag seen by the HEAD (so the bytes are the same object's), a
bounded number of times. The hash is taken in order of offsets, once every byte is in.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ._digest import Digest
from ._errors import IntegrityError, UnavailableError

if TYPE_CHECKING:
    from ._bucket import Body, S3Bucket

__all__ = ["Download", "positional_writer", "replace_verified"]

MiB = 1024 * 1024

WriteAt = Callable[[int, bytes], None]


def positional_writer(out: BinaryIO, base: int) -> WriteAt:
    """A thread-safe ``write_at(offset, data)`` for ``out``: pwrite where it can."""
    try:
        fileno = out.fileno()
        out.flush()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fileno = None
    if fileno is not None and hasattr(os, "pwrite"):

        def pwrite(offset: int, data: bytes) -> None:
            view = memoryview(data)
            while view:
                written = os.pwrite(fileno, view, base + offset)
                view = view[written:]
                offset += written

        return pwrite
    lock = threading.Lock()

    def seek_write(offset: int, data: bytes) -> None:
        with lock:
            out.seek(base + offset)
            out.write(data)

    return seek_write


def new_file_beside(dest: Path) -> tuple[int, Path]:
    """A new temporary file next to ``dest``, with the mode any new file gets (umask)."""
    while True:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.s3repo-part")
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def replace_verified(dest: Path, fill: Callable[[BinaryIO], int]) -> int:
    """Replace ``dest`` with what ``fill`` writes (and verifies) into a file beside it.

    The new file is renamed to ``dest`` only if ``fill`` returns; whatever it raises,
    ``dest`` is left as it was. FileNotFoundError or IsADirectoryError for a ``dest``
    that cannot be written. Returns what ``fill`` returns (the byte count).
    """
    if dest.is_dir():
        raise IsADirectoryError(21, "is a directory", str(dest))
    parent = dest.parent
    if not parent.is_dir():
        raise FileNotFoundError(2, "no such directory", str(parent))
    fd, tmp = new_file_beside(dest)
    try:
        with os.fdopen(fd, "r+b") as out:
            size = fill(out)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


class Download:
    """One verified download of ``key`` (``size`` bytes, ``etag``) from ``bucket``,
    in ranges of ``part_size`` bytes, ``concurrency`` at a time."""

    #: How often one range is asked for again after it broke off or came back short.
    max_resumes = 3

    def __init__(
        self,
        bucket: S3Bucket,
        digest: Digest,
        key: str,
        size: int,
        etag: str | None,
        *,
        part_size: int,
        concurrency: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.bucket = bucket
        #: Called with each chunk's byte count as it is written (a progress bar).
        self.on_progress = on_progress
        self.digest = digest
        self.key = key
        self.size = size
        self.etag = etag
        self.concurrency = concurrency
        self.what = bucket.where(key)
        self.ranges = [
            (first, min(first + part_size, size)) for first in range(0, size, part_size)
        ] or [(0, 0)]

    def to_path(self, dest: Path) -> int:
        """Download into a new file renamed to ``dest`` only once the bytes verify."""

        def fill(out: BinaryIO) -> int:
            if len(self.ranges) > 1:
                self._to_readable_file(out)
                return self.size
            return self.to_file(out)

        return replace_verified(dest, fill)

    def read_range(self, first: int, end: int, sink: WriteAt) -> None:
        """Pass bytes [first, end) to ``sink(offset, chunk)``, resuming where they stop.

        The whole object is asked for without a Range header, so that a server's
        full-object checksum is checked too.
        """
        offset = first
        resumes = 0
        while True:
            try:
                with self._get(offset, end) as body:
                    while offset < end:
                        chunk = body.read(min(MiB, end - offset))
                        if not chunk:
                            break
                        sink(offset, chunk)
                        offset += len(chunk)
                        if self.on_progress is not None:
                            self.on_progress(len(chunk))
            except UnavailableError:
                if resumes >= self.max_resumes:
                    raise
            else:
                if offset == end:
                    return
                if resumes >= self.max_resumes:
                    raise IntegrityError(
                        f"{self.what}: range {first}-{end - 1} ended at byte {offset}",
                        digest=self.digest,
                    )
            resumes += 1

    def _get(self, first: int, end: int) -> Body:
        whole = first == 0 and end >= self.size
        return self.bucket.open(self.key, first, None if whole else end, self.etag, hashed=True)

    def _to_readable_file(self, out: BinaryIO) -> None:
        """Download into a file we can read back: ranges are written as they arrive.

        No range waits for an earlier one (a slow range would otherwise idle the other
        workers); the hash reads the written bytes back in order from the page cache
        as soon as they are contiguous, so memory stays at the ranges in flight.
        """
        write_at = positional_writer(out, 0)
        fd = out.fileno()
        hasher = hashlib.sha256()
        concurrency = self.concurrency
        with ThreadPoolExecutor(concurrency, thread_name_prefix="s3repo-get") as pool:
            futures = [pool.submit(self.read_range, a, b, write_at) for a, b in self.ranges]
            try:
                for future, (first, end) in zip(futures, self.ranges, strict=True):
                    future.result()
                    for offset in range(first, end, MiB):
                        hasher.update(os.pread(fd, min(MiB, end - offset), offset))
            finally:
                for future in futures:
                    future.cancel()
        self._check(hasher)

    def to_file(self, out: BinaryIO) -> int:
        """Download into any writable file, at its position; ranges hashed in order."""
        base = out.tell() if callable(getattr(out, "tell", None)) else 0
        write_at = positional_writer(out, base)

        def fetch(first: int, end: int) -> bytes:
            data = bytearray()
            self.read_range(first, end, lambda _, chunk: data.extend(chunk))
            write_at(first, bytes(data))
            return bytes(data)

        hasher = hashlib.sha256()
        if len(self.ranges) == 1:
            hasher.update(fetch(*self.ranges[0]))
        else:
            window = self.concurrency + 2
            in_flight: deque[Future[bytes]] = deque()
            pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-get")
            with pool:
                try:
                    for first, end in self.ranges:
                        in_flight.append(pool.submit(fetch, first, end))
                        if len(in_flight) >= window:
                            hasher.update(in_flight.popleft().result())
                    while in_flight:
                        hasher.update(in_flight.popleft().result())
                finally:
                    for future in in_flight:
                        future.cancel()
        self._check(hasher)
        if callable(getattr(out, "seek", None)):
            out.seek(base + self.size)
        return self.size

    def _check(self, hasher: Any) -> None:
        actual = Digest(hasher.digest())
        if actual != self.digest:
            raise IntegrityError(
                f"{self.what}: bytes hash to {actual}, not {self.digest}", digest=self.digest
            )
