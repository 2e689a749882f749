"""Multipart uploads and copies as a small object: ``complete`` or ``abort``, nothing else.

Used as a context manager, an upload that is not completed is aborted, whatever went
wrong, so a failed transfer never leaves an open multipart upload behind.
"""

from __future__ import annotations

import base64
import threading
import zlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ._errors import IntegrityError
from ._store import PendingUpload

if TYPE_CHECKING:
    from ._bucket import S3Bucket

__all__ = ["MultipartUpload", "copy_parts"]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class MultipartUpload:
    """One S3 multipart upload to ``key`` in ``bucket``, begun on construction.

    ``checksum`` is the algorithm each uploaded part's checksum is declared in, for the
    server to check the bytes it receives: ``CRC32`` (computed here, from the bytes sent,
    in place of botocore's own), ``SHA256`` (given for each part, as a first pass over
    the body computed it: the server then checks the body did not change), or None.
    """

    def __init__(
        self,
        bucket: S3Bucket,
        key: str,
        metadata: Mapping[str, str] | None = None,
        checksum: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.key = key
        self.checksum = checksum
        self.upload_id = bucket.create_upload(key, metadata, checksum)
        self._parts: dict[int, str] = {}
        self._checksums: dict[int, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._finished = False

    def upload_part(
        self,
        number: int,
        data: bytes | bytearray | memoryview,
        crc32: int | None = None,
        sha256: bytes | None = None,
    ) -> None:
        """Upload part ``number`` (1-based); safe to call from several threads.

        ``crc32`` is the CRC32 the part must have: IntegrityError, and nothing sent,
        if its bytes have another. ``sha256`` is the SHA-256 the server must find (an
        upload declared ``SHA256`` needs it).
        """
        # A bytearray: botocore would copy bytes twice more (see ``read_buffer``).
        body = bytearray(data) if isinstance(data, memoryview) else data
        checksums: dict[str, str] = {}
        if crc32 is not None or self.checksum == "CRC32":
            actual = zlib.crc32(body)
            if crc32 is not None and actual != crc32:
                raise IntegrityError(
                    f"part {number} of the upload to {self.bucket.where(self.key)} changed "
                    "since it was first read",
                    key=self.key,
                )
            if self.checksum == "CRC32":
                checksums["ChecksumCRC32"] = _b64(actual.to_bytes(4, "big"))
        if self.checksum == "SHA256":
            if sha256 is None:
                raise ValueError("an upload that declares SHA256 needs each part's SHA-256")
            checksums["ChecksumSHA256"] = _b64(sha256)
        etag = self.bucket.upload_part(self.key, self.upload_id, number, body, checksums)
        with self._lock:
            self._parts[number] = etag
            self._checksums[number] = checksums

    def copy_part(self, number: int, source: Mapping[str, str], first: int, last: int) -> None:
        """Copy bytes ``first..last`` (inclusive) of ``source`` into part ``number``."""
        etag = self.bucket.copy_part(self.key, self.upload_id, number, source, first, last)
        with self._lock:
            self._parts[number] = etag

    def upload_all(
        self,
        chunks: Iterable[bytes | bytearray | memoryview],
        executor: Executor,
        max_in_flight: int,
        crc32s: Sequence[int] | None = None,
        sha256s: Sequence[bytes] | None = None,
    ) -> int:
        """Upload ``chunks`` as parts 1..n, at most ``max_in_flight`` at a time.

        The chunks are pulled in this thread (so a hashing iterator hashes here, in
        order) while earlier parts upload in ``executor``; ``crc32s`` and ``sha256s``
        give each part's, as :meth:`upload_part` takes them. Returns the number of
        parts; the first failure is raised after the in-flight parts are waited for.
        """
        in_flight: deque[Future[None]] = deque()
        number = 0
        try:
            for chunk in chunks:
                crc32 = crc32s[number] if crc32s is not None else None
                sha256 = sha256s[number] if sha256s is not None else None
                number += 1
                in_flight.append(executor.submit(self.upload_part, number, chunk, crc32, sha256))
                while len(in_flight) >= max_in_flight or (in_flight and in_flight[0].done()):
                    in_flight.popleft().result()
            while in_flight:
                in_flight.popleft().result()
        finally:
            for future in in_flight:
                future.cancel()
            for future in in_flight:
                if not future.cancelled():
                    future.exception()
        return number

    def complete(self) -> None:
        """Publish the parts as one object, atomically."""
        self.bucket.complete_upload(self.key, self.upload_id, self._parts, self._checksums)
        self._finished = True

    def abort(self) -> None:
        """Discard the upload and its parts; nothing becomes visible."""
        if self._finished:
            return
        self._finished = True
        self.bucket.abort_upload(PendingUpload(self.key, self.upload_id, datetime.now(UTC)))

    def __enter__(self) -> MultipartUpload:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._finished:
            try:
                self.abort()
            except Exception:
                if exc_type is None:
                    raise
                # The original error matters more; collection sweeps what is left.


def copy_parts(
    upload: MultipartUpload,
    source: Mapping[str, str],
    size: int,
    part_size: int,
    executor: Executor,
) -> None:
    """Fill ``upload`` with server-side copies of ``source`` in ``part_size`` ranges."""
    ranges = [(first, min(first + part_size, size) - 1) for first in range(0, size, part_size)]
    futures = [
        executor.submit(upload.copy_part, number, source, first, last)
        for number, (first, last) in enumerate(ranges, start=1)
    ]
    try:
        for future in futures:
            future.result()
    finally:
        for future in futures:
            future.cancel()
