"""The file repository: the same contract and layout in a local directory.

``file:///path/to/dir`` holds ``objects/sha256:<hex>`` files exactly as a bucket holds
keys, so a directory synced from a bucket is a repository, and back. Writes go to a
temporary file and are renamed into place once their bytes verify; reads are verified
as they are read; collection runs the same protocol as on S3 (leases, grace, refresh,
settle), with a file's modification time as its Last-Modified. It serves as a local
cache in front of S3 (``read_from`` an ``s3r://`` URL) and as the store for notebooks
and tests that need no server.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import SplitResult, unquote, urlsplit

from ._base import StoreRepository, as_digest, binary_destination
from ._digest import Digest, File
from ._directory import DirectoryStore, translate_os_error
from ._download import positional_writer, replace_verified
from ._errors import InvalidArgumentError, NotExistError
from ._keeper import DEFAULT_GRACE, DEFAULT_REFRESH_WINDOW, DEFAULT_SETTLE, Keeper, Windows
from ._names import Layout
from ._repository import Body, Destination
from ._store import Stat
from ._streams import HashingReader, VerifyingReader, as_stream
from ._uploads import check_matches

__all__ = ["FileRepository"]

MiB = 1024 * 1024
CHUNK = MiB


class FileRepository(StoreRepository):
    """A content-addressed repository in the directory ``root`` (under ``prefix``).

    The windows mean what they mean for :class:`~s3repo_core.S3Repository`, and the
    same guarantee holds: when a put returns, the object is stored, and no collection
    deletes it unless that collection started more than ``grace - refresh_window``
    later and its liveset does not name it. ``create`` makes ``root`` if it is missing
    (otherwise NotExistError, as for a missing bucket).
    """

    scheme = "file"
    store: DirectoryStore

    def __init__(
        self,
        root: str | os.PathLike[str],
        prefix: str = "",
        *,
        create: bool = False,
        concurrency: int = 4,
        refresh_window: timedelta = DEFAULT_REFRESH_WINDOW,
        grace: timedelta = DEFAULT_GRACE,
        settle: timedelta = DEFAULT_SETTLE,
        heartbeat: timedelta | None = None,
        lease_ttl: timedelta | None = None,
    ) -> None:
        if concurrency < 1:
            raise InvalidArgumentError("concurrency must be at least 1")
        if create:
            try:
                Path(root).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InvalidArgumentError(f"cannot create {root}: {exc}") from exc
        self.store = DirectoryStore(root)
        self.root = self.store.root
        self.layout = Layout(prefix)
        if self.layout.prefix:
            # So that the URL, which names root/prefix as a root, opens it again.
            where = self.store.path_of(self.layout.prefix)
            try:
                where.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise translate_os_error(exc, f"creating {where}") from exc
        self.concurrency = concurrency
        self.windows = Windows.derive(refresh_window, grace, settle, heartbeat, lease_ttl)
        self.keeper = Keeper(
            self.store, self.layout, self.windows, self._refresh, concurrency=concurrency
        )

    @classmethod
    def from_url(cls, url: SplitResult | str, **options: Any) -> FileRepository:
        """The repository a ``file:///absolute/path`` URL names (no host, query or fragment)."""
        parsed = urlsplit(url) if isinstance(url, str) else url
        if parsed.scheme.lower() != cls.scheme:
            raise InvalidArgumentError(f"not a {cls.scheme}:// URL: {parsed.geturl()!r}")
        if parsed.netloc not in ("", "localhost") or parsed.query or parsed.fragment:
            raise InvalidArgumentError(
                f"malformed repository URL {parsed.geturl()!r}: expected file:///absolute/path"
            )
        path = unquote(parsed.path)
        if not path.startswith("/"):
            raise InvalidArgumentError(f"malformed repository URL {parsed.geturl()!r}: no path")
        return cls(path, **options)

    @property
    def url(self) -> str:
        base = f"{self.scheme}://{self.root}"
        return f"{base}/{self.layout.prefix}" if self.layout.prefix else base

    def short_string(self) -> str:
        return f"file:{self.root}/{self.prefix}" if self.prefix else f"file:{self.root}"

    def _open(self, digest: Digest) -> tuple[BinaryIO, int]:
        key = self.layout.object_key(digest)
        try:
            body = self.store.open(key)
        except NotExistError as exc:
            raise self._missing(digest) from exc
        size = os.fstat(body.fileno()).st_size
        return body, size

    def get(self, digest: Digest | str) -> BinaryIO:
        """A stream of the object's bytes, verified as read (IntegrityError at the end)."""
        digest = as_digest(digest)
        body, size = self._open(digest)

        def open_from(offset: int) -> BinaryIO:
            again, _ = self._open(digest)
            again.seek(offset)
            return again

        where = self.store.where(self.layout.object_key(digest))
        raw = VerifyingReader(digest, size, open_from, body, where)
        return io.BufferedReader(raw, buffer_size=MiB)

    def get_file(
        self,
        digest: Digest | str,
        dest: Destination,
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Copy the object into ``dest`` (a path, replaced only once the bytes verify,
        or an open binary file, written at its position); its size. ``on_progress``
        is called with each chunk's byte count."""
        digest = as_digest(digest)
        if isinstance(dest, str | os.PathLike):
            return replace_verified(
                Path(dest), lambda out: self._copy_verified(digest, out, on_progress)
            )
        return self._copy_verified(digest, binary_destination(dest), on_progress)

    def _copy_verified(
        self, digest: Digest, out: BinaryIO, on_progress: Callable[[int], None] | None = None
    ) -> int:
        base = out.tell() if callable(getattr(out, "tell", None)) else 0
        write_at = positional_writer(out, base)
        with self.get(digest) as source:
            offset = 0
            while chunk := source.read(CHUNK):
                write_at(offset, chunk)
                offset += len(chunk)
                if on_progress is not None:
                    on_progress(len(chunk))
        if callable(getattr(out, "seek", None)):
            out.seek(base + offset)
        return offset

    # -- writing ----------------------------------------------------------------------

    def _refresh(self, found: Stat) -> bool:
        return self.store.touch(found.key)

    def _kept(self, digest: Digest, size: int) -> bool:
        return self.keeper.kept(self.store.head(self.layout.object_key(digest)), size)

    def _spool(self, reader: HashingReader, limit: int | None = None) -> Path:
        """The bytes of ``reader`` in a new temporary file (for :meth:`DirectoryStore.publish`),
        hashed on the way; past ``limit`` bytes it stops, as the body is too long anyway.
        Nothing is left behind if reading or writing fails."""
        temp, out = self.store.new_temp()
        try:
            with out:
                for chunk in reader.chunks(lambda _: CHUNK):
                    if limit is not None and reader.size > limit:
                        break
                    out.write(chunk)
        except BaseException:
            self.store.discard(temp)
            raise
        return temp

    def put(self, body: Body) -> Digest:
        """Store ``body``; its digest. The bytes go to a temporary file as they are
        hashed, which is renamed into place, or dropped if the content is stored."""
        if isinstance(body, bytes | bytearray | memoryview):
            data = bytes(body)
            digest = Digest.of(data)
            if not self._kept(digest, len(data)):
                self.store.put(self.layout.object_key(digest), data)
            return digest
        reader = HashingReader(as_stream(body))
        temp = self._spool(reader)
        digest = reader.digest
        try:
            stored = self._kept(digest, reader.size)
        except BaseException:
            self.store.discard(temp)
            raise
        if stored:
            self.store.discard(temp)
        else:
            self.store.publish(temp, self.layout.object_key(digest))
        return digest

    def put_file(self, file: File, body: Body) -> None:
        """Store ``body`` as ``file``; IntegrityError, and nothing stored, unless its
        bytes are ``file``'s; nothing read if ``file`` is stored already."""
        self._put_file(file, body)

    def _write_verified(self, file: File, body: Body) -> None:
        key = self.layout.object_key(file.digest)
        if isinstance(body, bytes | bytearray | memoryview):
            data = bytes(body)
            check_matches(file, Digest.of(data), len(data))
            self.store.put(key, data)
            return
        reader = HashingReader(as_stream(body))
        temp = self._spool(reader, limit=file.size)
        try:
            check_matches(file, reader.digest, reader.size)
        except BaseException:
            self.store.discard(temp)
            raise
        self.store.publish(temp, key)

    def put_files(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        on_hashed: Callable[[Path, File], None] | None = None,
        on_stored: Callable[[Path, File], None] | None = None,
        on_written: Callable[[Path, File], None] | None = None,
    ) -> list[File]:
        """Store the files at ``paths`` as :meth:`put_file` would; their Files, in order."""
        return self._put_files(paths, on_hashed, on_stored, on_written)
