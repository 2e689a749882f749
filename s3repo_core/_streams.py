"""Reading bodies in parts while hashing them, and reading objects while verifying them.

Both readers hash large buffers on one background thread while the next bytes are
read (hashlib releases the GIL while it hashes them): in order, with at most two
updates pending, so memory stays bounded and the digest is that of the bytes as read.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import stat
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

from ._digest import Digest, File
from ._errors import IntegrityError, InvalidArgumentError, RepositoryError

__all__ = [
    "Fingerprint",
    "Fingerprinted",
    "HashingReader",
    "Identity",
    "VerifyingReader",
    "as_stream",
    "fingerprint",
    "identity_of",
    "read_buffer",
    "read_upto",
    "rewind_point",
]


def as_stream(body: Any) -> BinaryIO:
    """``body`` as a binary stream; bytes-like bodies are wrapped without copying."""
    if isinstance(body, bytes | bytearray | memoryview):
        return io.BytesIO(body)
    if isinstance(body, str):
        raise InvalidArgumentError("a body is bytes or a binary stream, not str: encode it")
    if not callable(getattr(body, "read", None)):
        raise InvalidArgumentError(
            f"a body is bytes or a readable binary stream, got {type(body).__name__}"
        )
    return body  # type: ignore[no-any-return]


#: The first buffer for a stream of unknown length; it doubles as it fills.
_FIRST_READ = 1024 * 1024
_DRAIN_BUFFER = 8 * 1024 * 1024


def _remaining(stream: Any) -> int | None:
    """Bytes left in ``stream`` if it is a BytesIO or a regular file, else None."""
    try:
        if isinstance(stream, io.BytesIO):  # seeking one is free; getbuffer() may copy
            here = stream.tell()
            end = stream.seek(0, io.SEEK_END)
            stream.seek(here)
            return max(0, end - here)
        status = os.fstat(stream.fileno())
        if stat.S_ISREG(status.st_mode):
            position: int = stream.tell()
            return max(0, status.st_size - position)
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        pass
    return None


def rewind_point(stream: Any) -> int | None:
    """Where to seek back to for a second pass over ``stream``, if it is cheap to re-read.

    Only a regular file or a BytesIO qualifies: their size is known and seeking them is
    free (a seekable gzip stream, say, would decompress again).
    """
    if _remaining(stream) is None:
        return None
    try:
        return int(stream.tell())
    except (AttributeError, OSError, ValueError):
        return None


#: Smaller updates are hashed inline: handing one to the thread and back costs about as
#: much as hashing 512 KiB (SHA-256 at ~2 GB/s), and io.RawIOBase.readall reads 8 KiB.
_OVERLAP_MIN = 512 * 1024


class _OrderedHash:
    """SHA-256 fed in order, each update either inline or on one background thread.

    :meth:`update_later` queues a large update for the thread, first waiting for the
    oldest one while ``depth`` are pending. Two, not one: a queued update starts as soon
    as the one before it ends, where a single one would wait for the GIL that the reader
    holds while it copies the next bytes (8 MiB parts on two cores: 0.85 of hashlib's speed
    with one, 0.90 to 0.94 with two, no better with three). A queued buffer must not change
    until it is hashed (``depth`` calls later, or :meth:`digest` or :meth:`close`). The
    thread starts with the first deferred update and ends with :meth:`close`.
    """

    def __init__(self, depth: int = 2) -> None:
        self._hash = hashlib.sha256()
        self._depth = depth
        self._executor: ThreadPoolExecutor | None = None
        self._pending: deque[Future[None]] = deque()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.wait()
        self._hash.update(data)

    def update_later(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) < _OVERLAP_MIN:
            self.update(data)
            return
        while len(self._pending) >= self._depth:
            self._pending[0].result()
            self._pending.popleft()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="s3repo-hash")
        self._pending.append(self._executor.submit(self._hash.update, data))

    def wait(self) -> None:
        """Wait for the pending updates; a failed one raises here, and again every time."""
        while self._pending:
            self._pending[0].result()
            self._pending.popleft()

    def digest(self) -> Digest:
        self.wait()
        return Digest(self._hash.digest())

    def close(self) -> None:
        """Wait for the pending updates (if any) and end the thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


class HashingReader:
    """Reads a binary stream in exact-size chunks, hashing and counting every byte once."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._readinto = getattr(stream, "readinto", None)
        self._hash = _OrderedHash()
        self.size = 0
        self.eof = False

    def read(self, n: int) -> bytearray:
        """Up to ``n`` bytes; fewer only at the end of the stream.

        The buffer is sized to what the stream holds when that is known (a regular file,
        a BytesIO), else grown as it fills: a small file read with a 64 MiB ``n`` must
        not cost a 64 MiB allocation.
        """
        buf = self._fill(n)
        self._hash.update(buf)
        return buf

    def _fill(self, n: int) -> bytearray:
        """Up to ``n`` bytes, counted but not hashed."""
        left = _remaining(self._stream)
        buf = bytearray(min(n, left + 1 if left is not None else _FIRST_READ))
        got = 0
        while got < n:
            if got == len(buf):
                buf += bytes(min(len(buf), n - len(buf)))
            with memoryview(buf) as view:
                k = self._read_into(view[got:])
            if not k:
                self.eof = True
                break
            got += k
        if got < len(buf):
            del buf[got:]
        self.size += got
        return buf

    def _read_into(self, view: memoryview) -> int:
        if self._readinto is not None:
            return int(self._readinto(view) or 0)
        data = self._stream.read(len(view))
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidArgumentError(
                f"the body's read() returned {type(data).__name__}, not bytes: "
                "open it in binary mode"
            )
        view[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read and hash the rest of the stream, keeping none of it.

        The buffer is no larger than what a regular file or BytesIO holds: a zero-filled
        8 MiB buffer for each of 2,000 small files cost more than hashing them.
        """
        left = _remaining(self._stream)
        size = _DRAIN_BUFFER if left is None else min(_DRAIN_BUFFER, left + 1)
        with memoryview(bytearray(size)) as view:
            while k := self._read_into(view):
                self._hash.update(view[:k])
                self.size += k
        self.eof = True

    def chunks(self, part_size: Callable[[int], int]) -> Iterator[bytearray]:
        """Chunks of ``part_size(i)`` bytes for i = 1, 2, ... until the stream ends.

        An empty final chunk is not yielded, except for an empty stream's first one.
        Each chunk is hashed on a background thread while the next one is read, so a
        yielded chunk must not be changed; ``size`` counts it when it is yielded and
        ``digest`` waits for its hash. A stream that fits in one chunk is hashed inline,
        without a thread; the thread ends with the generator, however that ends.
        """
        number = 0
        try:
            while not self.eof:
                number += 1
                chunk = self._fill(part_size(number))
                if number == 1 and self.eof:
                    self._hash.update(chunk)
                elif chunk:
                    self._hash.update_later(chunk)
                if chunk or number == 1:
                    yield chunk
        finally:
            self._hash.close()

    @property
    def digest(self) -> Digest:
        return self._hash.digest()


# -- a first pass over a body that will be read twice --------------------------------------

#: Bytes :func:`fingerprint` reads at a time; a larger part is read in pieces.
_GRANULE = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Identity:
    """What ``fstat`` says of an open regular file; a write through the file system
    changes it.

    The kernel sets ``ctime`` on every write and every change of ``mtime``, and no call
    sets it back (``utime`` sets it to now), so a file written between two ``fstat``
    calls shows another identity, unless the write fell in the clock tick of the first
    call, or the file system does not keep ``ctime`` (some network mounts).
    """

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int


def identity_of(stream: Any) -> Identity | None:
    """The Identity of the regular file behind ``stream``; None for anything else."""
    try:
        status = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    return Identity(
        status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino, status.st_dev
    )


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What one pass over a body learnt, so that the pass that uploads it need not
    compute its SHA-256 again.

    ``file`` is its digest and size. A body kept whole is ``data``: immutable bytes, so
    what was hashed is what is uploaded. Otherwise the body is cut in ``part_size``
    parts (the last may be shorter): ``crc32s`` holds the CRC32 of each, and ``sha256s``
    the SHA-256 of each when they were asked for (for a server that checks them), and
    ``identity`` is the file's before the pass (None for a BytesIO).
    """

    file: File
    part_size: int
    crc32s: tuple[int, ...] = ()
    sha256s: tuple[bytes, ...] = ()
    identity: Identity | None = None
    data: bytes | None = None


def read_upto(stream: Any, n: int) -> bytes:
    """Up to ``n`` bytes of ``stream`` as immutable bytes; fewer only at its end."""
    pieces: list[bytes] = []
    got = 0
    while got < n:
        data = stream.read(n - got)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidArgumentError(
                f"the body's read() returned {type(data).__name__}, not bytes: "
                "open it in binary mode"
            )
        if not data:
            break
        pieces.append(bytes(data))  # no copy for bytes, which regular files return
        got += len(data)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _read_into(stream: Any, view: memoryview) -> int:
    """Fill ``view`` from ``stream``; fewer bytes only at its end. The count read."""
    if not callable(getattr(stream, "readinto", None)):
        data = read_upto(stream, len(view))
        view[: len(data)] = data
        return len(data)
    got = 0
    while got < len(view):
        k = stream.readinto(view[got:])
        if not k:
            break
        got += k
    return got


def read_buffer(stream: Any, n: int) -> bytearray:
    """Up to ``n`` bytes of ``stream`` in a new buffer; fewer only at its end.

    A bytearray, not bytes: botocore sends it as it is, where it wraps bytes in a
    BytesIO and copies them twice more, to sign and to send.
    """
    buf = bytearray(n)
    with memoryview(buf) as view:
        got = _read_into(stream, view)
    if got < n:
        del buf[got:]
    return buf


class _PartHashes:
    """The SHA-256 of each part, computed in order on one background thread."""

    def __init__(self, depth: int = 2) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="s3repo-hash")
        self._depth = depth
        self._pending: deque[Future[None]] = deque()
        self._current = hashlib.sha256()
        self._digests: list[bytes] = []

    def _submit(self, work: Callable[[], None]) -> None:
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._executor.submit(work))

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._submit(functools.partial(self._current.update, data))

    def end_part(self) -> None:
        self._submit(functools.partial(self._end, self._current))
        self._current = hashlib.sha256()

    def _end(self, hashing: Any) -> None:
        self._digests.append(hashing.digest())

    def digests(self) -> tuple[bytes, ...]:
        while self._pending:
            self._pending.popleft().result()
        return tuple(self._digests)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def fingerprint(
    stream: BinaryIO,
    part_size: Callable[[int], int],
    *,
    keep: int = 0,
    part_sha256: Callable[[], bool] = lambda: False,
) -> Fingerprint:
    """One pass over the rest of ``stream`` (a regular file or a BytesIO): its Fingerprint.

    A body of at most ``keep`` bytes (by ``fstat``) is read whole and kept. A longer one
    is cut in ``part_size(its size)`` parts and read once, in pieces: the SHA-256 of the
    whole is computed on a background thread while the next piece is read, each part's
    CRC32 in this thread (zlib lets go of the GIL), and each part's SHA-256, if
    ``part_sha256()``, on a second thread; so on two cores the pass takes about as long
    as the SHA-256 alone.
    """
    identity = identity_of(stream)
    left = _remaining(stream) or 0
    if left <= keep:
        data = read_upto(stream, left + 1)
        while more := read_upto(stream, _GRANULE):  # it grew meanwhile: to the end
            data += more
        return Fingerprint(File(Digest.of(data), len(data)), 0, identity=identity, data=data)
    whole = _OrderedHash()
    parts = _PartHashes() if part_sha256() else None
    size_of_parts = part_size(left)
    # Buffers taken in turn: the hash threads hold at most two pieces each, so a buffer
    # comes round again only once both are done with it (a new one each time cost a
    # quarter of the SHA-256 in zeroing and page faults).
    ring = [memoryview(bytearray(min(_GRANULE, size_of_parts))) for _ in range(4)]
    crc32s: list[int] = []
    size = pieces = 0
    try:
        while True:
            crc, got = 0, 0
            while got < size_of_parts:
                buffer = ring[pieces % len(ring)]
                pieces += 1
                n = _read_into(stream, buffer[: min(len(buffer), size_of_parts - got)])
                if not n:
                    break
                piece = buffer[:n]
                whole.update_later(piece)
                crc = zlib.crc32(piece, crc)
                if parts is not None:
                    parts.update(piece)
                got += n
            if got == 0 and crc32s:
                break
            crc32s.append(crc)
            if parts is not None:
                parts.end_part()
            size += got
            if got < size_of_parts:
                break
        digest = whole.digest()
        sha256s = parts.digests() if parts is not None else ()
    finally:
        whole.close()
        if parts is not None:
            parts.close()
    if size == 0:  # emptied since it was looked at
        return Fingerprint(File(digest, 0), size_of_parts, identity=identity, data=b"")
    return Fingerprint(File(digest, size), size_of_parts, tuple(crc32s), sha256s, identity)


class Fingerprinted(io.RawIOBase):
    """``stream``, positioned where its fingerprint starts, with that Fingerprint.

    It reads as ``stream`` does, so any writer can take it as a body; S3's writer checks
    the second pass against the fingerprint instead of hashing it again. Closing it
    leaves ``stream`` open (it is the caller's).
    """

    def __init__(self, stream: BinaryIO, fingerprint: Fingerprint) -> None:
        super().__init__()
        self.stream = stream
        self.fingerprint = fingerprint

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = read_upto(self.stream, len(view))
        view[: len(data)] = data
        return len(data)

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self.stream.seek(offset, whence))

    def tell(self) -> int:
        return int(self.stream.tell())

    def fileno(self) -> int:
        return int(self.stream.fileno())


class VerifyingReader(io.RawIOBase):
    """An object's bytes as a raw stream, hashed as they are read.

    At the end of the stream the digest and size are checked, and a mismatch raises
    IntegrityError instead of returning EOF. A connection that breaks mid-body is
    resumed with a ranged GET pinned to the same ETag, a bounded number of times.
    """

    def __init__(
        self,
        digest: Digest,
        size: int,
        open_range: Callable[[int], Any],
        body: Any,
        what: str,
        max_resumes: int = 3,
    ) -> None:
        super().__init__()
        self._digest = digest
        self._size = size
        self._open_range = open_range
        self._body = body
        self._what = what
        self._hash = _OrderedHash()
        self._read = 0
        self._resumes_left = max_resumes
        self._verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed stream")
        view = memoryview(buffer).cast("B")
        while True:
            try:
                data = self._body.read(len(view)) if len(view) else b""
                break
            except RepositoryError:
                if self._resumes_left <= 0 or self._read >= self._size:
                    raise
                self._resumes_left -= 1
                self._close_body()
                self._body = self._open_range(self._read)
        n = len(data)
        if n:
            view[:n] = data
            # Bytes are immutable (``view`` is the caller's to reuse), so they are hashed
            # while the caller goes on; inline if they are the whole object. Reading
            # straight into ``view`` would save no copy (urllib3's readinto is read()
            # and a copy) and would have to be hashed before returning.
            if isinstance(data, bytes) and not (self._read == 0 and n >= self._size):
                self._hash.update_later(data)
            else:
                self._hash.update(data)
            self._read += n
            if self._read > self._size:
                raise IntegrityError(
                    f"{self._what}: more bytes than its {self._size}", digest=self._digest
                )
        elif len(view):
            self._verify()
        return n

    def _verify(self) -> None:
        if self._verified:
            return
        if self._read != self._size:
            raise IntegrityError(
                f"{self._what}: read {self._read} bytes, expected {self._size}",
                digest=self._digest,
            )
        actual = self._hash.digest()
        self._hash.close()
        if actual != self._digest:
            raise IntegrityError(
                f"{self._what}: bytes hash to {actual}, not {self._digest}", digest=self._digest
            )
        self._verified = True

    def _close_body(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()

    def close(self) -> None:
        if not self.closed:
            self._close_body()
            self._hash.close()
        super().close()
