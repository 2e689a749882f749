"""Reading bodies in parts while hashing them, and reading objects while verifying them.

Both readers hash large buffers on one background thread while the next bytes are
read (hashlib releases the GIL while it hashes them): in order, with at most two
updates pending, so memory stays bounded and the digest is that of the bytes as read.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from ._digest import Digest
from ._errors import IntegrityError, InvalidArgumentError, RepositoryError

__all__ = ["HashingReader", "VerifyingReader", "as_stream", "rewind_point"]


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
