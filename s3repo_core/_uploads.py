"""Writing objects to S3: single PUTs, multipart uploads, server-side copies, refreshes.

Every way content reaches ``objects/`` passes through :class:`S3Writer`, so that every
write sends the repository's options and the digest as metadata, nothing is published
unless its bytes verify, and content already stored is kept instead of written again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import BinaryIO

from ._bucket import S3Bucket
from ._digest import Digest, File
from ._errors import IntegrityError, NotExistError
from ._keeper import Keeper, Windows
from ._multipart import MultipartUpload, copy_parts
from ._names import Layout
from ._store import Stat
from ._streams import HashingReader, as_stream

__all__ = ["MAX_PARTS", "MAX_PART_SIZE", "MAX_SINGLE_COPY", "MIN_PART_SIZE", "S3Writer"]

MiB = 1024 * 1024
GiB = 1024 * MiB
#: S3's limits: the smallest part but the last, the most parts, the largest single copy.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_SINGLE_COPY = 5 * GiB

Bytes = bytes | bytearray | memoryview


def check_matches(file: File, digest: Digest, size: int) -> None:
    """IntegrityError unless ``digest`` and ``size`` (of a body read) are ``file``'s."""
    if size > file.size:
        raise IntegrityError(
            f"the body for {file.digest} is longer than {file.size} bytes", digest=file.digest
        )
    if size < file.size:
        raise IntegrityError(
            f"the body for {file.digest} has {size} bytes, not {file.size}", digest=file.digest
        )
    if digest != file.digest:
        raise IntegrityError(f"the body hashes to {digest}, not {file.digest}", digest=file.digest)


class S3Writer:
    """The write side of one S3 repository (see ``S3Repository`` for the parameters)."""

    def __init__(
        self,
        bucket: S3Bucket,
        layout: Layout,
        windows: Windows,
        *,
        part_size: int,
        concurrency: int,
        copy_threshold: int,
    ) -> None:
        self.bucket = bucket
        self.layout = layout
        self.part_size = part_size
        self.concurrency = concurrency
        self.copy_threshold = copy_threshold
        self.keeper = Keeper(bucket, layout, windows, self.refresh, concurrency=concurrency)
        self._self_copy_refreshes: bool | None = None

    @staticmethod
    def metadata(digest: Digest, **extra: str) -> dict[str, str]:
        """``x-amz-meta-content-sha256``: how current reflow reads an object's hash."""
        return {"content-sha256": digest.hex, **extra}

    def part_size_for(self, size: int) -> int:
        """The part size for ``size`` bytes: ours, or larger to stay within 10,000 parts."""
        needed = math.ceil(size / MAX_PARTS)
        return max(self.part_size, math.ceil(needed / MiB) * MiB)

    def _pool(self, purpose: str) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"s3repo-{purpose}")

    # -- content with a known digest -----------------------------------------------------

    def store_known(self, digest: Digest, data: bytes | bytearray) -> None:
        """Store in-memory bytes whose digest is known, unless they are already stored."""
        key = self.layout.object_key(digest)
        if self.keeper.kept(self.bucket.head(key), len(data)):
            return
        # Absent, or stored with the wrong size (damaged behind our back): write it.
        self.upload(key, data, digest)

    def upload(self, key: str, data: bytes | bytearray, digest: Digest) -> None:
        """Write verified in-memory bytes to ``key``: one PUT, or parts when large."""
        if len(data) <= self.part_size:
            self.bucket.put(key, bytes(data), self.metadata(digest))
            return
        part_size = self.part_size_for(len(data))
        view = memoryview(data)
        chunks = (view[i : i + part_size] for i in range(0, len(data), part_size))
        with (
            self._pool("put") as pool,
            MultipartUpload(self.bucket, key, self.metadata(digest)) as upload,
        ):
            upload.upload_all(chunks, pool, self.concurrency + 1)
            upload.complete()

    def write_verified(self, file: File, body: Bytes | BinaryIO) -> None:
        """Upload ``body`` to ``file``'s key, hashing it on the way.

        Unless its bytes are ``file``'s, nothing is published and IntegrityError is raised.
        """
        key = self.layout.object_key(file.digest)
        if isinstance(body, bytes | bytearray | memoryview):
            data = bytes(body)
            check_matches(file, Digest.of(data), len(data))
            self.upload(key, data, file.digest)
            return
        reader = HashingReader(as_stream(body))
        if file.size <= self.part_size:
            data = bytes(reader.read(file.size + 1))
            check_matches(file, reader.digest, len(data))
            self.upload(key, data, file.digest)
            return
        part_size = self.part_size_for(file.size)

        def bounded_chunks() -> Iterator[bytearray]:
            for chunk in reader.chunks(lambda _: part_size):
                if reader.size > file.size:
                    raise IntegrityError(
                        f"the body for {file.digest} is longer than {file.size}",
                        digest=file.digest,
                    )
                yield chunk

        with (
            self._pool("put") as pool,
            MultipartUpload(self.bucket, key, self.metadata(file.digest)) as upload,
        ):
            upload.upload_all(bounded_chunks(), pool, self.concurrency + 1)
            check_matches(file, reader.digest, reader.size)
            upload.complete()

    # -- streams of unknown content ------------------------------------------------------

    def put_streaming(self, reader: HashingReader, first: bytearray) -> Digest:
        """Upload a long stream under uploads/ while hashing it, then publish it."""
        upload_key = self.layout.new_upload_key()
        view = memoryview(first)
        head_parts = [view[i : i + self.part_size] for i in range(0, len(first), self.part_size)]
        leading = len(head_parts)

        def part_size(number: int) -> int:
            # Parts grow every 1,000 so that 10,000 parts reach S3's 5 TiB object limit.
            return min(self.part_size << ((leading + number - 1) // 1000), MAX_PART_SIZE)

        with self._pool("put") as pool, MultipartUpload(self.bucket, upload_key) as upload:
            upload.upload_all(
                chain(head_parts, reader.chunks(part_size)), pool, self.concurrency + 1
            )
            digest, size = reader.digest, reader.size
            key = self.layout.object_key(digest)
            if self.keeper.kept(self.bucket.head(key), size):
                upload.abort()
                return digest
            upload.complete()
        try:
            self.copy(upload_key, key, size, digest)
        finally:
            self.bucket.delete_quietly(upload_key)
        return digest

    # -- copies and refreshes ------------------------------------------------------------

    def copy(
        self,
        src_key: str,
        dst_key: str,
        size: int,
        digest: Digest,
        *,
        src_bucket: str | None = None,
        **metadata: str,
    ) -> None:
        """Server-side copy; in parts above ``copy_threshold``. Atomic at the destination."""
        meta = self.metadata(digest, **metadata)
        if size <= self.copy_threshold:
            self.bucket.copy(src_key, dst_key, meta, src_bucket)
            return
        source = {"Bucket": src_bucket or self.bucket.name, "Key": src_key}
        with self._pool("copy") as pool, MultipartUpload(self.bucket, dst_key, meta) as upload:
            copy_parts(upload, source, size, self.part_size_for(size), pool)
            upload.complete()

    def refresh(self, found: Stat) -> bool:
        """Give ``found``'s key a new last-modified time: a self-copy, or a round trip.

        Some servers (the JuiceFS gateway) accept a self-copy without touching the
        object; the first refresh checks, and the writer remembers what works.
        """
        key, size = found.key, found.size
        floor = found.now.replace(microsecond=0)
        digest = self.layout.digest_of_key(key)
        assert digest is not None, key  # only object keys are refreshed
        if self._self_copy_refreshes is not False:
            try:
                self.copy(key, key, size, digest, **{"s3repo-refreshed": found.now.isoformat()})
            except NotExistError:
                return False  # collected since it was found: the caller writes it again
            after = self.bucket.head(key)
            if after is None:
                return False
            if after.modified >= floor:
                self._self_copy_refreshes = True
                return True
            self._self_copy_refreshes = False
        temporary = self.layout.new_upload_key()
        try:
            self.copy(key, temporary, size, digest)
            self.copy(temporary, key, size, digest)
        except NotExistError:
            return False
        finally:
            self.bucket.delete_quietly(temporary)
        return True
