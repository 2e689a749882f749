"""Multipart uploads and copies as a small object: ``complete`` or ``abort``, nothing else.

Used as a context manager, an upload that is not completed is aborted, whatever went
wrong, so a failed transfer never leaves an open multipart upload behind.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor, Future
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ._store import PendingUpload

if TYPE_CHECKING:
    from ._bucket import S3Bucket

__all__ = ["MultipartUpload", "copy_parts"]


class MultipartUpload:
    """One S3 multipart upload to ``key`` in ``bucket``, begun on construction."""

    def __init__(
        self, bucket: S3Bucket, key: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        self.bucket = bucket
        self.key = key
        self.upload_id = bucket.create_upload(key, metadata)
        self._parts: dict[int, str] = {}
        self._lock = threading.Lock()
        self._finished = False

    def upload_part(self, number: int, data: bytes | bytearray | memoryview) -> None:
        """Upload part ``number`` (1-based); safe to call from several threads."""
        body = bytes(data) if isinstance(data, memoryview) else data
        etag = self.bucket.upload_part(self.key, self.upload_id, number, body)
        with self._lock:
            self._parts[number] = etag

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
    ) -> int:
        """Upload ``chunks`` as parts 1..n, at most ``max_in_flight`` at a time.

        The chunks are pulled in this thread (so a hashing iterator hashes here, in
        order) while earlier parts upload in ``executor``. Returns the number of parts;
        the first failure is raised after the in-flight parts are waited for.
        """
        in_flight: deque[Future[None]] = deque()
        number = 0
        try:
            for chunk in chunks:
                number += 1
                in_flight.append(executor.submit(self.upload_part, number, chunk))
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
        self.bucket.complete_upload(self.key, self.upload_id, self._parts)
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
