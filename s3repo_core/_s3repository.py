"""The S3 repository: the seed's API over one bucket and prefix, as a facade.

Objects live at ``<prefix>/objects/sha256:<hex>`` and in-progress uploads at
``<prefix>/uploads/<16 hex>``, exactly as the Go original lays them out, so a bucket
written by either is read by the other. The work is done elsewhere, a module a job:
requests in ``_bucket``, writes in ``_uploads``, batches in ``_batch``, downloads in
``_download``, keeping found content in ``_keeper``, collection in ``_collect``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import SplitResult, urlsplit

from ._base import StoreRepository, as_digest, binary_destination
from ._bucket import S3Bucket
from ._client import prepare_client
from ._digest import Digest, File
from ._download import Download
from ._errors import InvalidArgumentError, NotExistError
from ._keeper import (
    CLOCK_RESOLUTION,
    DEFAULT_GRACE,
    DEFAULT_REFRESH_WINDOW,
    DEFAULT_SETTLE,
    Windows,
)
from ._names import Layout, check_bucket
from ._options import StoreOptions
from ._repository import Body, Destination
from ._streams import (
    Fingerprinted,
    HashingReader,
    VerifyingReader,
    as_stream,
    fingerprint,
    rewind_point,
)
from ._uploads import MAX_PART_SIZE, MAX_SINGLE_COPY, MIN_PART_SIZE, S3Writer

__all__ = ["CLOCK_RESOLUTION", "S3Repository"]

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_CONCURRENCY = 8
DEFAULT_LOOKAHEAD = 64 * MiB


class S3Repository(StoreRepository):
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
    store: S3Bucket

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
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise InvalidArgumentError(
                f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes"
            )
        if concurrency < 1:
            raise InvalidArgumentError("concurrency must be at least 1")
        if not 0 < copy_threshold <= MAX_SINGLE_COPY:
            raise InvalidArgumentError(f"copy_threshold must be in 1..{MAX_SINGLE_COPY}")
        self.windows = Windows.derive(refresh_window, grace, settle, heartbeat, lease_ttl)
        self.part_size = part_size
        self.concurrency = concurrency
        # The lookahead is whole parts, so a long stream's first parts are its slices.
        self.lookahead = max(part_size, lookahead // part_size * part_size)
        self.copy_threshold = copy_threshold
        self.options = options or StoreOptions()
        self.store = S3Bucket(
            self.bucket, prepare_client(client) if client is not None else None, self.options
        )
        self.writer = S3Writer(
            self.store,
            self.layout,
            self.windows,
            part_size=part_size,
            concurrency=concurrency,
            copy_threshold=copy_threshold,
        )
        self.keeper = self.writer.keeper

    # -- naming ---------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: SplitResult | str, **options: Any) -> S3Repository:
        """The repository an ``s3r://bucket/prefix[?options]`` URL names (see ``_options``)."""
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
    def url(self) -> str:
        """``s3r://bucket/prefix``, with its options as a query: :func:`dial` opens it again."""
        query = self.options.query()
        return f"{self.scheme}://{self.bucket}/{self.prefix}" + (f"?{query}" if query else "")

    def short_string(self) -> str:
        """``s3:bucket/prefix``, or ``s3:bucket`` with no prefix."""
        return f"s3:{self.bucket}/{self.prefix}" if self.prefix else f"s3:{self.bucket}"

    @property
    def client(self) -> Any:
        """The boto3 client in use: the one given, else the one set for the bucket."""
        return self.store.client

    def _missing(self, digest: Digest) -> NotExistError:
        """The error for an object a HEAD did not find (or a missing bucket's)."""
        self.store.confirm_missing(self.layout.object_key(digest))
        return super()._missing(digest)

    # -- reading ----------------------------------------------------------------------

    def get(self, digest: Digest | str) -> BinaryIO:
        """A binary stream of the object's bytes, verified as they are read.

        The stream is not loaded whole. Reading to the end raises IntegrityError if the
        bytes do not hash to ``digest``. A connection that breaks is resumed, pinned to
        the object's ETag. Raises NotExistError if the object is missing.
        """
        digest = as_digest(digest)
        key = self.layout.object_key(digest)
        try:
            body = self.store.open(key, hashed=True)
        except NotExistError as exc:
            raise self._missing(digest) from exc
        etag = body.etag

        def open_from(offset: int) -> Any:
            return self.store.open(key, offset, None, etag, hashed=True)

        raw = VerifyingReader(digest, body.size, open_from, body, self.store.where(key))
        return io.BufferedReader(raw, buffer_size=MiB)

    def get_file(
        self,
        digest: Digest | str,
        dest: Destination,
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Download the object into ``dest`` (a path or an open binary file); verified.

        Ranges are fetched concurrently and written at their offsets while they are
        hashed in order; a range that breaks off or comes back short is resumed from
        where it stopped, pinned to the object's ETag, a few times (``Download.max_resumes``). A
        path is written to a temporary file beside it (created as any file is, under
        the umask) and renamed only once the bytes verify, so a failed download leaves
        ``dest`` untouched; an open file receives the bytes at its current position.
        Returns the byte count. Raises NotExistError if the object is missing,
        IntegrityError if it is corrupt, and FileNotFoundError or IsADirectoryError
        for a destination path that cannot be written. ``on_progress(count)`` is called
        as bytes arrive, from worker threads (a resumed range counts some twice).
        """
        digest = as_digest(digest)
        key = self.layout.object_key(digest)
        found = self.store.head(key)
        if found is None:
            raise self._missing(digest)
        download = Download(
            self.store,
            digest,
            key,
            found.size,
            found.etag,
            part_size=self.part_size,
            concurrency=self.concurrency,
            on_progress=on_progress,
        )
        if isinstance(dest, str | os.PathLike):
            return download.to_path(Path(dest))
        return download.to_file(binary_destination(dest))

    # -- writing ----------------------------------------------------------------------

    def put(self, body: Body) -> Digest:
        """Store ``body`` (bytes or a readable binary stream of any length); its digest.

        Content already stored is not uploaded again. A regular file (or a BytesIO) of
        up to ``lookahead`` bytes is read once, hashed, and uploaded from memory. A
        longer one is read twice: a first pass computes its SHA-256 and each part's
        CRC32, and the second uploads it straight to its key, checked against the first
        (IntegrityError if it changed meanwhile: see ``S3Writer.write_twice`` for what
        is checked, and the one kind of change a CRC32 can miss). Another stream is
        hashed as it is read: held in memory up to ``lookahead``, and beyond that
        uploaded under ``uploads/``, then published to ``objects/`` with a server-side
        copy (in parts above ``copy_threshold``) and its upload removed, or dropped if
        it is stored.
        Publication is atomic: the object is visible whole or not at all, and a put
        that fails for any reason (including the body raising mid-stream) publishes
        nothing and removes its upload. The body's own exceptions propagate unchanged.
        """
        with self.options.named_in_refusals():
            if isinstance(body, bytes | bytearray | memoryview):
                data = bytes(body)  # a private copy: the caller cannot change it under us
                digest = Digest.of(data)
                self.writer.store_known(digest, data)
                return digest
            stream = as_stream(body)
            origin = rewind_point(stream)
            if origin is not None:
                # A file: learn its key in a first pass, then store it straight under
                # that key, checked against the first pass: no server-side copy, and no
                # upload if it is stored.
                known = fingerprint(
                    stream,
                    self.writer.part_size_for,
                    keep=self.lookahead,
                    part_sha256=self.writer.server_checks,
                )
                stream.seek(origin)
                self._put_file(known.file, cast(BinaryIO, Fingerprinted(stream, known)))
                return known.file.digest
            reader = HashingReader(stream)
            first = reader.read(self.lookahead)
            if reader.eof:
                self.writer.store_known(reader.digest, first)
                return reader.digest
            return self.writer.put_streaming(reader, first)

    def put_file(self, file: File, body: Body) -> None:
        """Store ``body`` as ``file``; nothing is read or uploaded if it is already stored.

        Otherwise the body is uploaded straight to its object key (in parts sized to
        ``file.size``) and hashed on the way; unless its bytes hash to ``file.digest``
        and number ``file.size``, the upload is aborted, nothing is published and
        IntegrityError is raised. IntegrityError is also raised, without reading the
        body, if the object is stored with a size other than ``file.size``.
        """
        with self.options.named_in_refusals():
            self._put_file(file, body)

    def put_files(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        on_hashed: Callable[[Path, File], None] | None = None,
        on_stored: Callable[[Path, File], None] | None = None,
        on_written: Callable[[Path, File], None] | None = None,
    ) -> list[File]:
        """Store the files at ``paths``, concurrently, as :meth:`put` would; their Files.

        Each file is hashed first. Which contents are stored already is then asked of
        S3 with a LIST from the least digest to the greatest, or a HEAD each where that
        takes fewer requests (``_survey``); what it shows stored is kept without a
        request per file (``_keeper``), and the rest is uploaded, each file read and
        hashed again as it goes: IntegrityError if it changed. A file that cannot be
        read raises its OSError. ``on_hashed(path, file)`` is called as each file is
        hashed, ``on_stored(path, file)`` for each path once its content is stored, and
        ``on_written(path, file)`` once per content this call uploaded, from worker
        threads.
        """
        with self.options.named_in_refusals():
            return self._put_files(paths, on_hashed, on_stored, on_written)

    def _write_verified(self, file: File, body: Body) -> None:
        self.writer.write_verified(file, body)

    def _copy_key(self, src_key: str, dst_key: str, size: int) -> None:
        """A server-side copy, in parts above ``copy_threshold`` (quarantine's move)."""
        digest = self.layout.digest_of_key(src_key)
        assert digest is not None, src_key  # only objects are moved
        with self.options.named_in_refusals():
            self.writer.copy(src_key, dst_key, size, digest)

    # -- between repositories -----------------------------------------------------------

    def copy_from(self, src: S3Repository, digest: Digest) -> bool:
        """Copy ``digest`` from ``src`` server-side, if both are on one endpoint.

        False (nothing done) if they are not: the caller streams the bytes instead.
        """
        if not self.store.same_endpoint(src.store):
            return False
        src_key = src.layout.object_key(digest)
        found = src.store.head(src_key)
        if found is None:
            raise src._missing(digest)
        dst_key = self.layout.object_key(digest)
        if self.keeper.kept(self.store.head(dst_key), found.size):
            return True
        with self.options.named_in_refusals():
            self.writer.copy(src_key, dst_key, found.size, digest, src_bucket=src.bucket)
        return True
