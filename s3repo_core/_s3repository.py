"""The S3 repository: the seed's API over one bucket and prefix.

Objects live at ``<prefix>/objects/sha256:<hex>`` and in-progress uploads at
``<prefix>/uploads/<16 hex>``, exactly as the Go original lays them out, so a bucket
written by either is read by the other.
"""

from __future__ import annotations

import bisect
import functools
import io
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar
from urllib.parse import SplitResult

from ._client import client_for, long_client, prepare_client
from ._collect import CollectionFailedError, Collector, CollectReport, shard_names
from ._dial import dial, register_scheme
from ._digest import Digest, File
from ._download import Download
from ._errors import IntegrityError, InvalidArgumentError, NotExistError, NotSupportedError
from ._lease import LeaseTimes, any_live_lease
from ._listing import key_before, list_pages
from ._multipart import MultipartUpload, copy_parts
from ._names import Layout, check_bucket
from ._options import StoreOptions, expect_owner
from ._streams import HashingReader, VerifyingReader, as_stream, rewind_point
from ._translate import translated

if TYPE_CHECKING:
    from .liveset import Liveset

__all__ = ["S3Repository"]

log = logging.getLogger("s3repo")

MiB = 1024 * 1024
GiB = 1024 * MiB
#: S3's limits: the smallest part but the last, the most parts, the largest single copy.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_SINGLE_COPY = 5 * GiB

DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_CONCURRENCY = 8
DEFAULT_LOOKAHEAD = 64 * MiB
DEFAULT_REFRESH_WINDOW = timedelta(hours=1)
DEFAULT_GRACE = timedelta(hours=24)
DEFAULT_SETTLE = timedelta(seconds=60)
#: S3 times (Last-Modified, Date) are whole seconds: every comparison allows for it.
CLOCK_RESOLUTION = timedelta(seconds=1)

Destination = str | os.PathLike[str] | BinaryIO
_Method = TypeVar("_Method", bound=Callable[..., Any])


def _as_digest(digest: Digest | str) -> Digest:
    return digest if isinstance(digest, Digest) else Digest.parse(digest)


def _naming_options(method: _Method) -> _Method:
    """A write method whose NotSupportedError names the repository's options.

    A store that lacks encryption or a storage class (the JuiceFS gateway answers 501
    NotImplemented to any encryption header) cannot say which header it refused.
    """

    @functools.wraps(method)
    def write(self: S3Repository, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except NotSupportedError as exc:
            if not self.options.needs():
                raise
            raise NotSupportedError(
                f"{exc} (this repository writes with {self.options.query()}: "
                "the store may not support that)"
            ) from exc

    return write  # type: ignore[return-value]


def _server_time(response: dict[str, Any]) -> datetime:
    """The server's clock from a response's Date header, so ages need no synced clocks."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        when = parsedate_to_datetime(date) if date else datetime.now(UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class S3Repository:
    """A content-addressed repository in ``s3://bucket/prefix``.

    ``part_size`` and ``concurrency`` shape multipart transfers; a stream of unknown
    length is held in memory up to ``lookahead`` bytes, so that content which turns
    out to be present is never uploaded; longer streams are uploaded while they are
    hashed. ``copy_threshold`` is the largest object copied with one CopyObject
    (S3 allows 5 GiB); larger ones are copied in parts.

    Writers and collection agree on three times, all measured on the server's clock:
    a put that finds its object stored and last modified more than ``refresh_window``
    ago refreshes it; collection refuses a threshold newer than ``grace`` ago; and a
    delete is sent within a quarter of ``settle`` of the listing that justified it,
    while a writer that finds an object modified less than ``settle`` ago, during a
    collection, waits that long and looks again. The guarantee that follows:

        **When put, put_file, put_files, write_to or read_from returns, the object is
        stored, and no collection deletes it unless that collection started more than
        ``grace - refresh_window`` later and its liveset does not name the object.**

    It assumes that S3 applies a DeleteObjects request within three quarters of
    ``settle`` of its being sent (collection never resends one without looking again).

    A collection holds a lease while it deletes, renewed every ``heartbeat`` (default:
    half of ``settle``, 1 to 30 s) and dead ``lease_ttl`` after its last renewal
    (default ``settle + 4 * heartbeat + 2 s``, about 3 minutes; at least ``settle + 2 *
    heartbeat + 2 s``), so a killed collector blocks writers and other collections for
    at most that long. It sends a delete only while its lease is certain to stay live
    until the delete has landed (see ``_lease``).
    """

    scheme = "s3r"
    #: Keys a LIST page asks for: S3's maximum. Tests make it small.
    list_page_size = 1000

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        part_size: int = DEFAULT_PART_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        lookahead: int = DEFAULT_LOOKAHEAD,
        copy_threshold: int = MAX_SINGLE_COPY,
        refresh_window: timedelta = DEFAULT_REFRESH_WINDOW,
        grace: timedelta = DEFAULT_GRACE,
        settle: timedelta = DEFAULT_SETTLE,
        heartbeat: timedelta | None = None,
        lease_ttl: timedelta | None = None,
        options: StoreOptions | None = None,
    ) -> None:
        self.bucket = check_bucket(bucket)
        self.layout = Layout(prefix)
        self._client = prepare_client(client) if client is not None else None
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise InvalidArgumentError(
                f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes"
            )
        if concurrency < 1:
            raise InvalidArgumentError("concurrency must be at least 1")
        if not 0 < copy_threshold <= MAX_SINGLE_COPY:
            raise InvalidArgumentError(f"copy_threshold must be in 1..{MAX_SINGLE_COPY}")
        if refresh_window <= timedelta(0) or settle <= timedelta(0):
            raise InvalidArgumentError("refresh_window and settle must be positive")
        if grace <= refresh_window + settle + 2 * CLOCK_RESOLUTION:
            raise InvalidArgumentError(
                "grace must be longer than refresh_window + settle + 2 seconds"
            )
        self.part_size = part_size
        self.concurrency = concurrency
        # The lookahead is whole parts, so a long stream's first parts are its slices.
        self.lookahead = max(part_size, lookahead // part_size * part_size)
        self.copy_threshold = copy_threshold
        self.refresh_window = refresh_window
        self.grace = grace
        self.settle = settle
        self.lease_times = LeaseTimes.derive(settle, heartbeat, lease_ttl)
        self.options = options or StoreOptions()
        self._self_copy_refreshes: bool | None = None

    # -- naming ---------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: SplitResult | str, **options: Any) -> S3Repository:
        """The repository an ``s3r://bucket/prefix[?options]`` URL names (see ``_options``)."""
        from urllib.parse import urlsplit

        parsed = urlsplit(url) if isinstance(url, str) else url
        if parsed.scheme.lower() != cls.scheme:
            raise InvalidArgumentError(f"not an {cls.scheme}:// URL: {parsed.geturl()!r}")
        if parsed.fragment or "@" in parsed.netloc or ":" in parsed.netloc:
            raise InvalidArgumentError(
                f"malformed repository URL {parsed.geturl()!r}: expected "
                f"{cls.scheme}://bucket/prefix with no user, port or fragment"
            )
        if not parsed.netloc:
            raise InvalidArgumentError(f"malformed repository URL {parsed.geturl()!r}: no bucket")
        if parsed.query:
            if "options" in options:
                raise InvalidArgumentError("give the options in the URL or as options=, not both")
            options = {**options, "options": StoreOptions.from_query(parsed.query)}
        return cls(parsed.netloc, parsed.path, **options)

    @property
    def prefix(self) -> str:
        return self.layout.prefix

    @property
    def url(self) -> str:
        """``s3r://bucket/prefix``, with its options as a query: :func:`dial` opens it again."""
        query = self.options.query()
        return f"{self.scheme}://{self.bucket}/{self.prefix}" + (f"?{query}" if query else "")

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"S3Repository({self.url!r})"

    def short_string(self) -> str:
        """``s3:bucket/prefix``, or ``s3:bucket`` with no prefix."""
        return f"s3:{self.bucket}/{self.prefix}" if self.prefix else f"s3:{self.bucket}"

    @property
    def client(self) -> Any:
        """The boto3 client in use: the one given, else the one set for the bucket."""
        client = self._client if self._client is not None else client_for(self.bucket)
        if self.options.owner is not None:
            expect_owner(client, self.bucket, self.options.owner)
        return client

    @property
    def _slow_client(self) -> Any:
        """The client for requests that take as long as the object is large (copies,
        completing a multipart upload): waits longer for an answer (see ``long_client``)."""
        client = long_client(self.client)
        if self.options.owner is not None:
            expect_owner(client, self.bucket, self.options.owner)
        return client

    def _object_args(self, digest: Digest, **metadata: str) -> dict[str, Any]:
        """What every write of an object sends: our options, and the digest as metadata.

        ``x-amz-meta-content-sha256`` is how current reflow reads an object's hash.
        """
        return {
            **self.options.write_args(),
            "Metadata": {"content-sha256": digest.hex, **metadata},
        }

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # -- reading ----------------------------------------------------------------------

    def _head(self, key: str) -> dict[str, Any] | None:
        """HEAD ``key``: its response, or None if it does not exist."""
        try:
            with translated(self._where(key)):
                return self.client.head_object(Bucket=self.bucket, Key=key)  # type: ignore[no-any-return]
        except NotExistError:
            return None

    def _missing(self, digest: Digest) -> NotExistError:
        """The error for an object a HEAD did not find, after one LIST to name it right.

        A HEAD's 404 has no body, so it cannot tell a missing object from a missing
        bucket, or from a web server that is not S3; the LIST's answer can.
        """
        with translated(f"s3://{self.bucket}"):
            self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self.layout.object_key(digest), MaxKeys=1
            )
        return NotExistError(f"{digest} is not in {self}")

    def stat(self, digest: Digest | str) -> File:
        """The stored object's File. Raises NotExistError if it (or the bucket) is missing."""
        digest = _as_digest(digest)
        key = self.layout.object_key(digest)
        head = self._head(key)
        if head is None:
            raise self._missing(digest)
        return File(digest, int(head["ContentLength"]))

    def get(self, digest: Digest | str) -> BinaryIO:
        """A binary stream of the object's bytes, verified as they are read.

        The stream is not loaded whole. Reading to the end raises IntegrityError if the
        bytes do not hash to ``digest``. Raises NotExistError if the object is missing.
        """
        digest = _as_digest(digest)
        key = self.layout.object_key(digest)
        what = self._where(key)
        client = self.client
        with translated(what):
            response = client.get_object(Bucket=self.bucket, Key=key)
        etag = response.get("ETag")

        def open_from(offset: int) -> Any:
            pinned = {"IfMatch": etag} if etag else {}
            with translated(what):
                return client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={offset}-", **pinned
                )["Body"]

        raw = VerifyingReader(
            digest, int(response["ContentLength"]), open_from, response["Body"], what
        )
        return io.BufferedReader(raw, buffer_size=MiB)  # type: ignore[return-value]

    def get_file(self, digest: Digest | str, dest: Destination) -> int:
        """Download the object into ``dest`` (a path or an open binary file); verified.

        Ranges are fetched concurrently and written at their offsets while they are
        hashed in order; a range that breaks off or comes back short is resumed from
        where it stopped, pinned to the object's ETag, a few times (``Download.max_resumes``). A
        path is written to a temporary file beside it (created as any file is, under
        the umask) and renamed only once the bytes verify, so a failed download leaves
        ``dest`` untouched; an open file receives the bytes at its current position.
        Returns the byte count. Raises NotExistError if the object is missing,
        IntegrityError if it is corrupt, and FileNotFoundError or IsADirectoryError
        for a destination path that cannot be written.
        """
        digest = _as_digest(digest)
        key = self.layout.object_key(digest)
        head = self._head(key)
        if head is None:
            raise self._missing(digest)
        size = int(head["ContentLength"])
        download = Download(self, digest, key, size, head.get("ETag"))
        if isinstance(dest, str | os.PathLike):
            return download.to_path(Path(dest))
        if not callable(getattr(dest, "write", None)):
            raise InvalidArgumentError(
                f"dest is a path or a writable binary file, got {type(dest).__name__}"
            )
        return download.to_file(dest)

    # -- writing ----------------------------------------------------------------------

    @_naming_options
    def put(self, body: bytes | bytearray | memoryview | BinaryIO) -> Digest:
        """Store ``body`` (bytes or a readable binary stream of any length); its digest.

        Content already stored is not uploaded again. A regular file (or a BytesIO) is
        hashed first, then stored as by :meth:`put_file`, which hashes it again as it
        uploads (IntegrityError if it changed meanwhile). Another stream is hashed as it
        is read: held in memory up to ``lookahead``, and beyond that uploaded under
        ``uploads/``, then published to ``objects/`` with a server-side copy (in parts
        above ``copy_threshold``) and its upload removed, or dropped if it is stored.
        Publication is atomic: the object is visible whole or not at all, and a put
        that fails for any reason (including the body raising mid-stream) publishes
        nothing and removes its upload. The body's own exceptions propagate unchanged.
        """
        if isinstance(body, bytes | bytearray | memoryview):
            data = bytes(body)  # a private copy: the caller cannot change it under us
            digest = Digest.of(data)
            self._store_known(digest, data)
            return digest
        stream = as_stream(body)
        origin = rewind_point(stream)
        if origin is not None:
            # A file: hash it, then store it straight under its key (put_file hashes it
            # again on the way): no server-side copy, and no upload if it is stored.
            file = _file_of(stream)
            stream.seek(origin)
            self.put_file(file, stream)
            return file.digest
        reader = HashingReader(stream)
        first = reader.read(self.lookahead)
        if reader.eof:
            self._store_known(reader.digest, first)
            return reader.digest
        return self._put_streaming(reader, first)

    @_naming_options
    def put_file(self, file: File, body: bytes | bytearray | memoryview | BinaryIO) -> None:
        """Store ``body`` as ``file``; nothing is read or uploaded if it is already stored.

        Otherwise the body is uploaded straight to its object key (in parts sized to
        ``file.size``) and hashed on the way; unless its bytes hash to ``file.digest``
        and number ``file.size``, the upload is aborted, nothing is published and
        IntegrityError is raised. IntegrityError is also raised, without reading the
        body, if the object is stored with a size other than ``file.size``.
        """
        if not isinstance(file, File):
            raise InvalidArgumentError(f"put_file takes a File, got {type(file).__name__}")
        key = self.layout.object_key(file.digest)
        head = self._head(key)
        if head is not None:
            stored = int(head["ContentLength"])
            if stored != file.size:
                raise IntegrityError(
                    f"{file.digest} is stored in {self} with {stored} bytes, not {file.size}"
                )
            if self._keep(key, head):
                return
        self._write_verified(file, body)

    @_naming_options
    def put_files(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        on_hashed: Callable[[Path, File], None] | None = None,
        on_stored: Callable[[Path, File], None] | None = None,
    ) -> list[File]:
        """Store the files at ``paths``, concurrently, as :meth:`put` would; their Files.

        Each file is hashed first. Which of them are stored already is then asked of S3
        with a LIST of the keys from the least digest to the greatest, as far as that
        takes fewer requests than a HEAD for each (a new or small repository, a large
        batch); a file it shows absent is uploaded without a HEAD, and the others go
        the way of :meth:`put_file`. Each file is read again as it is uploaded, and
        hashed again: IntegrityError if it changed. A file that cannot be read raises
        its OSError. For progress, ``on_hashed(path, file)`` is called as each file is
        hashed and ``on_stored(path, file)`` for each path once its content is stored,
        from worker threads.
        """
        paths = [Path(path) for path in paths]

        def hash_one(path: Path) -> File:
            file = _hash_file(path)
            if on_hashed is not None:
                on_hashed(path, file)
            return file

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-hash") as pool:
            files = list(pool.map(hash_one, paths))
        paths_of: dict[File, list[Path]] = {}  # each content once, whatever its copies
        for path, file in zip(paths, files, strict=True):
            paths_of.setdefault(file, []).append(path)
        absent = self._absent_by_listing(
            sorted(self.layout.object_key(file.digest) for file in paths_of)
        )

        def store(file: File) -> None:
            same = paths_of[file]
            with same[0].open("rb") as body:
                if self.layout.object_key(file.digest) in absent:
                    self._write_verified(file, body)
                else:
                    self.put_file(file, body)
            if on_stored is not None:
                for path in same:
                    on_stored(path, file)

        # The guarantee counts from the return: content confirmed early in a long batch
        # is looked at again (and refreshed if need be) until every confirmation is
        # recent; each pass is shorter than the one before, as it sends a HEAD a file.
        stored_at: dict[File, float] = {}

        def first(file: File) -> None:
            store(file)
            stored_at[file] = time.monotonic()

        def again(file: File) -> None:
            with paths_of[file][0].open("rb") as body:
                self.put_file(file, body)
            stored_at[file] = time.monotonic()

        stale = self.refresh_window.total_seconds() / 2
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-put") as pool:
            list(pool.map(first, paths_of))
            for _ in range(8):
                now = time.monotonic()
                todo = [file for file, at in stored_at.items() if now - at > stale]
                if not todo:
                    break
                list(pool.map(again, todo))
        return files

    def _absent_by_listing(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` (sorted object keys) a LIST shows absent, where it pays.

        Listing pages through the repository's objects from the first key on. Digests
        are uniform, so the key range the pages so far covered tells how many more the
        rest would take; once that is no fewer than the keys left, those keys are left
        for a HEAD each (and the answer for them is that none is known absent).
        """
        if len(keys) < 2:
            return set()
        absent: set[str] = set()
        start = _position(keys[0]) or 0
        pending = keys
        listing = list_pages(
            self.client,
            self.bucket,
            self.layout.objects_shard(""),
            key_before(keys[0]),
            self.list_page_size,
        )
        for pages, (_, page) in enumerate(listing, 1):
            contents = page.get("Contents", [])
            listed = {item["Key"] for item in contents}
            if not page.get("IsTruncated"):
                absent.update(key for key in pending if key not in listed)
                break
            if not contents:
                break
            last = contents[-1]["Key"]
            resolved = bisect.bisect_right(pending, last)
            absent.update(key for key in pending[:resolved] if key not in listed)
            pending = pending[resolved:]
            reached = _position(last)
            if not pending or reached is None:  # no estimate past a stray key: HEADs
                break
            pages_left = ((_position(pending[-1]) or 0) - reached) * pages / max(reached - start, 1)
            if pages_left >= len(pending):
                break
        return absent

    def _write_verified(self, file: File, body: bytes | bytearray | memoryview | BinaryIO) -> None:
        """Upload ``body`` to ``file``'s key, hashing it on the way.

        Unless its bytes are ``file``'s, nothing is published and IntegrityError is raised.
        """
        key = self.layout.object_key(file.digest)
        if isinstance(body, bytes | bytearray | memoryview):
            data = bytes(body)
            self._check_matches(file, Digest.of(data), len(data))
            self._upload(key, data, file.digest)
            return
        reader = HashingReader(as_stream(body))
        if file.size <= self.part_size:
            data = bytes(reader.read(file.size + 1))
            self._check_matches(file, reader.digest, len(data))
            self._upload(key, data, file.digest)
            return
        part_size = self._part_size_for(file.size)

        def bounded_chunks() -> Iterator[bytearray]:
            for chunk in reader.chunks(lambda _: part_size):
                if reader.size > file.size:
                    raise IntegrityError(f"the body for {file.digest} is longer than {file.size}")
                yield chunk

        with (
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-put") as pool,
            MultipartUpload(
                self.client,
                self.bucket,
                key,
                slow_client=self._slow_client,
                **self._object_args(file.digest),
            ) as upload,
        ):
            upload.upload_all(bounded_chunks(), pool, self.concurrency + 1)
            self._check_matches(file, reader.digest, reader.size)
            upload.complete()

    def _check_matches(self, file: File, digest: Digest, size: int) -> None:
        if size > file.size:
            raise IntegrityError(f"the body for {file.digest} is longer than {file.size} bytes")
        if size < file.size:
            raise IntegrityError(f"the body for {file.digest} has {size} bytes, not {file.size}")
        if digest != file.digest:
            raise IntegrityError(f"the body hashes to {digest}, not {file.digest}")

    def _store_known(self, digest: Digest, data: bytes | bytearray) -> None:
        """Store in-memory bytes whose digest is known, unless they are already stored."""
        key = self.layout.object_key(digest)
        head = self._head(key)
        if head is not None and int(head["ContentLength"]) == len(data) and self._keep(key, head):
            return
        # Absent, or stored with the wrong size (damaged behind our back): write it.
        self._upload(key, data, digest)

    def _upload(self, key: str, data: bytes | bytearray, digest: Digest) -> None:
        """Write verified in-memory bytes to ``key``: one PUT, or parts when large."""
        args = self._object_args(digest)
        if len(data) <= self.part_size:
            with translated(self._where(key)):
                self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data), **args)
            return
        part_size = self._part_size_for(len(data))
        view = memoryview(data)
        chunks = (view[i : i + part_size] for i in range(0, len(data), part_size))
        with (
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-put") as pool,
            MultipartUpload(
                self.client, self.bucket, key, slow_client=self._slow_client, **args
            ) as upload,
        ):
            upload.upload_all(chunks, pool, self.concurrency + 1)
            upload.complete()

    def _put_streaming(self, reader: HashingReader, first: bytearray) -> Digest:
        """Upload a long stream under uploads/ while hashing it, then publish it."""
        upload_key = self.layout.new_upload_key()
        view = memoryview(first)
        head_parts = [view[i : i + self.part_size] for i in range(0, len(first), self.part_size)]
        leading = len(head_parts)

        def part_size(number: int) -> int:
            # Parts grow every 1,000 so that 10,000 parts reach S3's 5 TiB object limit.
            return min(self.part_size << ((leading + number - 1) // 1000), MAX_PART_SIZE)

        with (
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-put") as pool,
            MultipartUpload(
                self.client,
                self.bucket,
                upload_key,
                slow_client=self._slow_client,
                **self.options.write_args(),
            ) as upload,
        ):
            upload.upload_all(
                chain(head_parts, reader.chunks(part_size)), pool, self.concurrency + 1
            )
            digest, size = reader.digest, reader.size
            key = self.layout.object_key(digest)
            head = self._head(key)
            if head is not None and int(head["ContentLength"]) == size and self._keep(key, head):
                upload.abort()
                return digest
            upload.complete()
        try:
            self._copy(upload_key, key, size, digest)
        finally:
            self._delete_quietly(upload_key)
        return digest

    def _part_size_for(self, size: int) -> int:
        """The part size for ``size`` bytes: ours, or larger to stay within 10,000 parts."""
        needed = math.ceil(size / MAX_PARTS)
        return max(self.part_size, math.ceil(needed / MiB) * MiB)

    def _copy(
        self,
        src_key: str,
        dst_key: str,
        size: int,
        digest: Digest,
        *,
        src_bucket: str | None = None,
        **metadata: str,
    ) -> None:
        """Server-side copy; in parts above ``copy_threshold``. Atomic at the destination.

        Every copy sends this repository's options and metadata again: a copy that does
        not resend them loses the encryption and the digest the source had.
        """
        source = {"Bucket": src_bucket or self.bucket, "Key": src_key}
        args = self._object_args(digest, **metadata)
        if size <= self.copy_threshold:
            src = f"s3://{source['Bucket']}/{src_key}"
            with translated(f"copying {src} to {self._where(dst_key)}"):
                self._slow_client.copy_object(
                    Bucket=self.bucket,
                    Key=dst_key,
                    CopySource=source,
                    MetadataDirective="REPLACE",
                    **args,
                )
            return
        with (
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-copy") as pool,
            MultipartUpload(
                self.client, self.bucket, dst_key, slow_client=self._slow_client, **args
            ) as upload,
        ):
            copy_parts(upload, source, size, self._part_size_for(size), pool)
            upload.complete()

    def _delete_quietly(self, key: str) -> None:
        """Delete ``key``; a failure is logged, as collection sweeps stale uploads."""
        try:
            with translated(self._where(key)):
                self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            log.warning("could not remove %s (collection will): %s", self._where(key), exc)

    def _keep(self, key: str, head: dict[str, Any]) -> bool:
        """A writer found ``key`` stored: make sure it stays (see the class docstring).

        On return the object is no older than ``refresh_window``, which is what the
        guarantee needs (a collection deletes only what is older than its threshold,
        at least ``grace`` before it started). Two dangers, each handled:

        - modified within ``settle``: the object may have been written back just after a
          collection decided to delete its previous version, whose delete may still be
          in flight. While a lease is live the writer waits that out, then looks again.
        - older than ``refresh_window``: it is refreshed. A refresh needs a wait after it
          only if the old version was old enough for some collection to have chosen it
          (older than ``grace``, less a margin); a younger one no collection can delete.

        Returns False if the object vanished meanwhile, so the caller writes it again.
        """
        modified = head.get("LastModified")
        if modified is None:
            return True
        now = _server_time(head)
        size = int(head["ContentLength"])
        settled = self.settle + CLOCK_RESOLUTION
        if now - modified < settled:
            if any_live_lease(self.client, self.bucket, self.layout, now, self.lease_times):
                time.sleep(max(0.0, (modified + settled - now).total_seconds()))
            head = self._head(key)
            if head is None:
                return False
            # The wait may have made it older than refresh_window: refresh it then.
            now, modified = _server_time(head), head["LastModified"]
            if now - modified > self.refresh_window:
                return self._refresh_and_settle(key, size, now, modified)
            return True
        if now - modified <= self.refresh_window:
            return True
        return self._refresh_and_settle(key, size, now, modified)

    def _refresh_and_settle(self, key: str, size: int, now: datetime, modified: datetime) -> bool:
        """Refresh ``key`` (last modified at ``modified``, seen at server time ``now``).

        If the old version was old enough by then for a collection to have chosen it,
        its delete may land for ``settle``: while a lease is live, wait that out and
        look again. Otherwise (the usual case: objects are refreshed an hour old and
        collected a day old) no wait is needed. False if the object vanished.
        """
        found_at = time.monotonic()
        if not self._refresh(key, size, now):
            return False
        # How old the old version was when the refresh landed, by the whole-second times
        # a collector compares (it chooses only what is older than grace plus a second,
        # by its own Date): a second's margin for our Date's truncation.
        oldest = now - modified + timedelta(seconds=time.monotonic() - found_at)
        if oldest + CLOCK_RESOLUTION < self.grace:
            return True
        if any_live_lease(self.client, self.bucket, self.layout, now, self.lease_times):
            time.sleep((self.settle + CLOCK_RESOLUTION).total_seconds())
            return self._head(key) is not None
        return True

    def _refresh(self, key: str, size: int, now: datetime) -> bool:
        """Give ``key`` a new last-modified time: a self-copy, or a round trip by uploads/.

        Some servers (the JuiceFS gateway) accept a self-copy without touching the
        object; the first refresh checks, and the repository remembers what works.
        """
        floor = now.replace(microsecond=0)
        digest = self.layout.digest_of_key(key)
        assert digest is not None, key  # only object keys are refreshed
        if self._self_copy_refreshes is not False:
            try:
                self._copy(key, key, size, digest, **{"s3repo-refreshed": now.isoformat()})
            except NotExistError:
                return False  # collected since it was found: the caller writes it again
            after = self._head(key)
            if after is None:
                return False
            if after["LastModified"] >= floor:
                self._self_copy_refreshes = True
                return True
            self._self_copy_refreshes = False
        temporary = self.layout.new_upload_key()
        try:
            self._copy(key, temporary, size, digest)
            self._copy(temporary, key, size, digest)
        except NotExistError:
            return False
        finally:
            self._delete_quietly(temporary)
        return True

    # -- collection ------------------------------------------------------------------

    def _server_now(self) -> datetime:
        """The server's clock, from the Date header of a cheap LIST."""
        with translated(f"listing {self}"):
            response = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self.layout.collections, MaxKeys=1
            )
        return _server_time(response)

    def collect(
        self,
        liveset: Liveset,
        *,
        threshold: datetime | None = None,
        dry_run: bool = False,
        shards: list[str] | None = None,
        keep_keys: bool = False,
        raise_on_errors: bool = True,
    ) -> CollectReport:
        """Delete every object that is not in ``liveset`` and not modified after ``threshold``.

        ``threshold`` defaults to ``grace`` ago on the server's clock and may not be
        newer (InvalidArgumentError). Keys under ``objects/`` that are not digests are
        reported, never deleted. Uploads under ``uploads/`` and multipart uploads older
        than the threshold are removed too. ``dry_run`` deletes nothing and reports
        exactly what would be deleted; ``shards`` restricts the run to some of
        :func:`shard_names` (default: all), so that workers can share a repository.
        ``keep_keys`` lists the collected keys in the report.

        Raises ConflictError if another collection holds one of the shards, and, unless
        ``raise_on_errors`` is False, CollectionFailedError (with the report) if the
        server refused to delete some keys. The guarantee in the class docstring holds
        for every object a writer was told is stored.
        """
        now = self._server_now()
        newest = now - self.grace
        if threshold is None:
            threshold = newest
        elif threshold.tzinfo is None:
            raise InvalidArgumentError("threshold must be timezone-aware (e.g. UTC)")
        elif threshold > newest:
            raise InvalidArgumentError(
                f"threshold {threshold.isoformat()} is newer than now minus the grace period "
                f"({newest.isoformat()}); writers could lose objects"
            )
        # Last-Modified is truncated to the second: keep whatever might be newer.
        effective = threshold.replace(microsecond=0) - CLOCK_RESOLUTION
        collector = Collector(self, liveset, effective, dry_run, shards or shard_names(), keep_keys)
        report = collector.run()
        if report.failed and raise_on_errors:
            raise CollectionFailedError(report)
        return report

    # -- between repositories -----------------------------------------------------------

    def write_to(self, digest: Digest | str, url: str) -> None:
        """Copy the object to the repository at ``url``.

        Between two ``s3r://`` repositories on the same endpoint the copy is
        server-side; otherwise the bytes stream through this process and are verified.
        Raises NotExistError if the object is missing here, NotSupportedError for a URL
        scheme no repository is registered for.
        """
        digest = _as_digest(digest)
        _transfer(digest, self, dial(url))

    def read_from(self, digest: Digest | str, url: str) -> None:
        """Copy the object from the repository at ``url`` into this one (see write_to)."""
        digest = _as_digest(digest)
        _transfer(digest, dial(url), self)

    def _same_endpoint(self, other: S3Repository) -> bool:
        mine, theirs = self.client, other.client
        return mine is theirs or (
            mine.meta.endpoint_url == theirs.meta.endpoint_url
            and mine.meta.region_name == theirs.meta.region_name
        )


def _file_of(stream: BinaryIO) -> File:
    """The File of the rest of ``stream``: one pass, nothing kept."""
    reader = HashingReader(stream)
    reader.drain()
    return File(reader.digest, reader.size)


def _hash_file(path: Path) -> File:
    """The File of what ``path`` holds now."""
    with path.open("rb") as body:
        return _file_of(body)


def _position(key: str) -> int | None:
    """Where an object key's digest lies in the hash space (its first 64 bits).

    None for a key that does not end in a digest (a stray key under ``objects/``).
    """
    try:
        return int(key[-64:-48], 16)
    except ValueError:
        return None


def _transfer(digest: Digest, src: Any, dst: Any) -> None:
    """Copy ``digest`` from ``src`` to ``dst``: server-side when both are S3 on one endpoint."""
    if isinstance(src, S3Repository) and isinstance(dst, S3Repository) and src._same_endpoint(dst):
        src_key = src.layout.object_key(digest)
        head = src._head(src_key)
        if head is None:
            raise src._missing(digest)
        size = int(head["ContentLength"])
        dst_key = dst.layout.object_key(digest)
        existing = dst._head(dst_key)
        if (
            existing is not None
            and int(existing["ContentLength"]) == size
            and dst._keep(dst_key, existing)
        ):
            return
        _naming_options(S3Repository._copy)(
            dst, src_key, dst_key, size, digest, src_bucket=src.bucket
        )
        return
    src_file = src.stat(digest)
    with src.get(digest) as stream:
        dst.put_file(src_file, stream)


register_scheme(S3Repository.scheme, S3Repository.from_url)
