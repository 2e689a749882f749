"""Writing objects to S3: single PUTs, multipart uploads, server-side copies, refreshes.

Every way content reaches ``objects/`` passes through :class:`S3Writer`, so that every
write sends the repository's options and the digest as metadata, nothing is published
unless its bytes verify, and content already stored is kept instead of written again.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import TYPE_CHECKING, Any, BinaryIO

from ._digest import Digest, File
from ._errors import IntegrityError, NotExistError
from ._keeper import Keeper, Windows
from ._multipart import MultipartUpload, copy_parts
from ._names import Layout
from ._store import Stat
from ._streams import (
    Fingerprint,
    Fingerprinted,
    HashingReader,
    as_stream,
    identity_of,
    read_buffer,
    read_upto,
)

if TYPE_CHECKING:
    from ._bucket import S3Bucket

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


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _check_unchanged(stream: Any, fingerprint: Fingerprint) -> None:
    """IntegrityError if the file's Identity is not what it was before the first pass."""
    if fingerprint.identity is not None and identity_of(stream) != fingerprint.identity:
        digest = fingerprint.file.digest
        raise IntegrityError(f"the file for {digest} changed as it was stored", digest=digest)


def _parts_again(stream: Any, fingerprint: Fingerprint) -> Iterator[bytearray]:
    """The parts of a fingerprinted body, read again; IntegrityError if it got shorter
    or longer."""
    file, part_size = fingerprint.file, fingerprint.part_size
    for first in range(0, file.size, part_size):
        data = read_buffer(stream, min(part_size, file.size - first))
        if first + len(data) < min(first + part_size, file.size):
            raise IntegrityError(
                f"the file for {file.digest} got shorter than {file.size} bytes as it was stored",
                digest=file.digest,
            )
        yield data
    if read_upto(stream, 1):
        raise IntegrityError(
            f"the file for {file.digest} got longer than {file.size} bytes as it was stored",
            digest=file.digest,
        )


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

    @property
    def part_checksum(self) -> str | None:
        """The checksum parts declare: CRC32, which S3 checks as each part arrives and
        botocore would otherwise compute itself, unless the client sends none.

        Not SHA-256, though it would be the digest itself for a single PUT: botocore
        checks an object's full SHA-256 on every GET, beside our own hashing.
        """
        return "CRC32" if self.bucket.sends_checksums else None

    def server_checks(self) -> bool:
        """Whether the server is known to refuse parts whose declared SHA-256 is not
        theirs: a first pass then takes each part's SHA-256 (see :meth:`write_twice`).

        The server is asked (``S3Bucket.verifies_checksums``) by the first upload of a
        fingerprinted body in parts, not before: a put of stored content sends nothing.
        """
        return self.bucket.verifies_checksums()

    def upload(self, key: str, data: bytes | bytearray, digest: Digest) -> None:
        """Write verified in-memory bytes to ``key``: one PUT, or parts when large."""
        if len(data) <= self.part_size:
            self.bucket.put(key, data, self.metadata(digest))
            return
        part_size = self.part_size_for(len(data))
        view = memoryview(data)
        chunks = (view[i : i + part_size] for i in range(0, len(data), part_size))
        meta = self.metadata(digest)
        with (
            self._pool("put") as pool,
            MultipartUpload(self.bucket, key, meta, self.part_checksum) as upload,
        ):
            upload.upload_all(chunks, pool, self.concurrency + 1)
            upload.complete()

    def write_verified(self, file: File, body: Bytes | BinaryIO | Fingerprinted) -> None:
        """Upload ``body`` to ``file``'s key; IntegrityError, and nothing published,
        unless its bytes are ``file``'s.

        Who checks what: a body of one part is read whole, its size checked here and
        its SHA-256 as the PUT leaves (``_put_checked``). A longer one is hashed here as
        it is read (SHA-256, on a background thread while parts upload) and the digest
        and size compared before the parts are published. A :class:`Fingerprinted`
        body was hashed by a first pass; the second is checked against it as
        :meth:`write_twice` says.
        """
        key = self.layout.object_key(file.digest)
        if isinstance(body, Fingerprinted) and body.fingerprint.file == file:
            self.write_twice(key, body.stream, body.fingerprint)
            return
        if isinstance(body, bytes | bytearray | memoryview):
            data = bytes(body)  # a private copy: the caller cannot change it under us
            if len(data) <= self.part_size:
                self._put_checked(file, key, data)
                return
            check_matches(file, Digest.of(data), len(data))
            self.upload(key, data, file.digest)
            return
        stream = as_stream(body)
        if file.size <= self.part_size:
            self._put_checked(file, key, read_buffer(stream, file.size + 1))
            return
        reader = HashingReader(stream)
        part_size = self.part_size_for(file.size)

        def bounded_chunks() -> Iterator[bytearray]:
            for chunk in reader.chunks(lambda _: part_size):
                if reader.size > file.size:
                    raise IntegrityError(
                        f"the body for {file.digest} is longer than {file.size}",
                        digest=file.digest,
                    )
                yield chunk

        meta = self.metadata(file.digest)
        with (
            self._pool("put") as pool,
            MultipartUpload(self.bucket, key, meta, self.part_checksum) as upload,
        ):
            upload.upload_all(bounded_chunks(), pool, self.concurrency + 1)
            check_matches(file, reader.digest, reader.size)
            upload.complete()

    def _put_checked(self, file: File, key: str, data: bytes | bytearray) -> None:
        """One PUT of ``data`` (no one else holds it), sent only if it is ``file``'s: its
        size checked here, its SHA-256 as the request leaves (``S3Bucket.put``), where
        over plain HTTP it is the one botocore signs the request with, not a second."""
        if len(data) != file.size:
            check_matches(file, file.digest, len(data))
        try:
            self.bucket.put(key, data, self.metadata(file.digest), sha256=file.digest.hex)
        except IntegrityError as exc:
            exc.digest = exc.digest or file.digest
            raise

    def write_twice(self, key: str, stream: BinaryIO, fingerprint: Fingerprint) -> None:
        """Upload the body a first pass fingerprinted, reading it a second time.

        A body the first pass kept whole is uploaded from memory: those are the bytes
        it hashed. Otherwise the SHA-256 is not computed again; instead, before anything
        is published:

        - the file's size, mtime, ctime, inode and device are what they were before the
          first pass, both before the second starts and after it ends (a write changes
          them: see ``Identity``);
        - every part is the same length as in the first pass, and the body ends there;
        - every part has the same CRC32 as in the first pass, checked here as it is sent
          (and declared, so the server checks that what it received is what was sent).
          Where the first pass took each part's SHA-256 instead, because the server
          checks declared checksums (``server_checks``), they are declared and the
          server refuses any part that differs (BadDigest, an IntegrityError).

        What escapes: a change to the file that leaves its size, mtime and ctime as they
        were (one in the clock tick of the first look, or on a file system that does not
        keep ctime) and, in each part it touches, keeps that part's CRC32: a random
        change does so with probability 2**-32 per part. CRC32 is no defence against a
        writer that means to collide it; the SHA-256 parts are. A reader of the object
        still verifies every byte against the digest.
        """
        digest = fingerprint.file.digest
        if fingerprint.data is not None:
            self.upload(key, fingerprint.data, digest)
            return
        _check_unchanged(stream, fingerprint)
        if len(fingerprint.crc32s) == 1:  # one part: one PUT
            (data,) = _parts_again(stream, fingerprint)  # (and the body ends there)
            crc = zlib.crc32(data)
            if crc != fingerprint.crc32s[0]:
                raise IntegrityError(
                    f"the file for {digest} changed as it was stored", digest=digest
                )
            _check_unchanged(stream, fingerprint)
            sent = {"ChecksumCRC32": _b64(crc.to_bytes(4, "big"))} if self.part_checksum else {}
            self.bucket.put(key, data, self.metadata(digest), sent)
            return
        self.bucket.verifies_checksums(self.layout.new_upload_key())  # for the next ones
        by_server = bool(fingerprint.sha256s)
        checksum = "SHA256" if by_server else self.part_checksum
        with (
            self._pool("put") as pool,
            MultipartUpload(self.bucket, key, self.metadata(digest), checksum) as upload,
        ):
            upload.upload_all(
                _parts_again(stream, fingerprint),
                pool,
                self.concurrency + 1,
                crc32s=None if by_server else fingerprint.crc32s,
                sha256s=fingerprint.sha256s if by_server else None,
            )
            _check_unchanged(stream, fingerprint)
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
