"""Multipart uploads and copies as a small object: ``complete`` or ``abort``, nothing else.

Used as a context manager, an upload that is not completed is aborted, whatever went
wrong, so a failed transfer never leaves an open multipart upload behind.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Executor, Future
from typing import Any

from ._translate import translated

__all__ = ["MultipartUpload", "copy_parts"]


class MultipartUpload:
    """One S3 multipart upload to ``bucket``/``key``.

    Server-side part copies and the completion take as long as the object is large, so
    they go through ``slow_client`` (one that waits longer for an answer), if given.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        slow_client: Any = None,
        **create_args: Any,
    ) -> None:
        self.client = client
        self.slow_client = slow_client if slow_client is not None else client
        self.bucket = bucket
        self.key = key
        self._what = f"multipart upload to s3://{bucket}/{key}"
        with translated(self._what):
            response = client.create_multipart_upload(Bucket=bucket, Key=key, **create_args)
        self.upload_id: str = response["UploadId"]
        self._parts: dict[int, str] = {}
        self._lock = threading.Lock()
        self._finished = False

    def upload_part(self, number: int, data: bytes | bytearray | memoryview) -> None:
        """Upload part ``number`` (1-based); safe to call from several threads."""
        with translated(f"{self._what}, part {number}"):
            response = self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=bytes(data) if isinstance(data, memoryview) else data,
            )
        with self._lock:
            self._parts[number] = response["ETag"]

    def copy_part(self, number: int, source: dict[str, str], first: int, last: int) -> None:
        """Copy bytes ``first..last`` (inclusive) of ``source`` into part ``number``."""
        with translated(f"{self._what}, copying part {number}"):
            response = self.slow_client.upload_part_copy(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                CopySource=source,
                CopySourceRange=f"bytes={first}-{last}",
            )
        with self._lock:
            self._parts[number] = response["CopyPartResult"]["ETag"]

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

    def complete(self) -> dict[str, Any]:
        """Publish the parts as one object, atomically."""
        parts = [{"PartNumber": n, "ETag": self._parts[n]} for n in sorted(self._parts)]
        with translated(f"completing {self._what}"):
            response = self.slow_client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            )
        self._finished = True
        return response

    def abort(self) -> None:
        """Discard the upload and its parts; nothing becomes visible."""
        if self._finished:
            return
        self._finished = True
        with translated(f"aborting {self._what}"):
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )

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
    source: dict[str, str],
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
