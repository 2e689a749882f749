"""A ``Store`` on a local directory, for ``file://`` repositories.

Key ``a/b/c`` is the file ``<root>/a/b/c``: a repository's layout (see ``_names``) is
the same as in a bucket, with a directory for each ``/``. Writes go to a temporary file
under ``<root>/.s3repo-tmp/`` (the same filesystem, never listed) and are renamed into
place, so a key is seen whole or not at all, as on S3. Every ``OSError`` is translated
here, and only here, into the library's errors (:func:`translate_os_error`).

Unlike a bucket, a directory cannot hold both a key ``a`` and keys under ``a/``. A
repository's layout never needs both; writing one where the other is raises
NotSupportedError.
"""

from __future__ import annotations

import errno
import heapq
import io
import itertools
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ._errors import (
    InvalidArgumentError,
    NotExistError,
    NotSupportedError,
    PermissionDeniedError,
    RepositoryError,
    UnavailableError,
)
from ._store import ObjectInfo, Page, PendingUpload, Stat

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = ["TEMP_DIR", "DirectoryStore", "translate_os_error"]

log = logging.getLogger("s3repo")

#: Where writes are prepared, under the root: no key lies in it and no listing shows it.
TEMP_DIR = ".s3repo-tmp"

#: The most keys a page holds and a ``delete_many`` takes (S3's limits).
_MAX_KEYS = 1000
#: Bytes a copy reads at a time.
_COPY_CHUNK = 1024 * 1024

#: What "no such key" looks like: the file or a directory on its path is missing, a
#: directory on its path is a file, or the key is a directory (which holds keys).
_ABSENT = (FileNotFoundError, NotADirectoryError, IsADirectoryError)

#: What a write meets when a key is where a directory must go, or the other way round.
_IN_THE_WAY = (NotADirectoryError, IsADirectoryError, FileExistsError)


def translate_os_error(error: OSError, doing: str, key: str | None = None) -> RepositoryError:
    """The library's error for ``error``, met while ``doing`` (which names the path).

    A refusal (PermissionError, a read-only filesystem) is PermissionDeniedError, a
    missing file NotExistError, a name too long InvalidArgumentError, and anything else
    (a full disk, an I/O error...) UnavailableError. Its ``code`` is the errno's name
    (``AccessDenied`` for a refusal, as on S3). The caller raises it ``from error``.
    """
    kind: type[RepositoryError]
    if isinstance(error, PermissionError) or error.errno == errno.EROFS:
        kind = PermissionDeniedError
    elif isinstance(error, FileNotFoundError):
        kind = NotExistError
    elif error.errno == errno.ENAMETOOLONG:
        kind = InvalidArgumentError
    else:
        kind = UnavailableError
    why = error.strerror or str(error)
    if isinstance(error.filename, str | bytes) and os.fsdecode(error.filename) not in doing:
        why = f"{why}: {os.fsdecode(error.filename)}"  # the path refused, if not the key's
    return kind(f"{doing}: {why}", key=key, code=_error_code(error))


@contextmanager
def _translated(doing: str, key: str | None = None) -> Iterator[None]:
    """Raise every OSError of the body as the library's error for it."""
    try:
        yield
    except OSError as error:
        raise translate_os_error(error, doing, key) from error


def _error_code(error: OSError) -> str:
    """``AccessDenied`` (S3's code) for a refusal, else the errno's name (``EIO``)."""
    if isinstance(error, PermissionError):
        return "AccessDenied"
    return errno.errorcode.get(error.errno or 0, type(error).__name__)


def _path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a key (or a key's directory part), or None if it can."""
    if not path:
        return "it is empty"
    if path.startswith("/"):
        return "it is absolute (starts with '/')"
    if "\0" in path:
        return "it holds NUL"
    if "\\" in path:
        return "it holds a backslash"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "it has an empty, '.' or '..' segment"
    if parts[0] == TEMP_DIR:
        return f"{TEMP_DIR}/ holds the store's temporary files"
    if not _is_text(path):
        return "it is not text (it holds a lone surrogate, which UTF-8 cannot encode)"
    return None


def _is_text(name: str) -> bool:
    """Whether ``name`` encodes as UTF-8: ``os`` decodes other bytes to lone surrogates."""
    if name.isascii():
        return True
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def _fsync_dir(path: str) -> None:
    """Make the entries of directory ``path`` durable (after a rename or a mkdir)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _File(io.FileIO):
    """A file whose reads, writes and close raise the library's errors, not OSError."""

    def __init__(self, file: str | int, mode: str, where: str, key: str | None) -> None:
        super().__init__(file, mode)
        self._where = where
        self._key = key

    def readinto(self, buffer: WriteableBuffer, /) -> int | None:
        with _translated(f"reading {self._where}", self._key):
            return super().readinto(buffer)

    def readall(self) -> bytes:
        with _translated(f"reading {self._where}", self._key):
            return super().readall()

    def read(self, size: int | None = -1, /) -> bytes:
        with _translated(f"reading {self._where}", self._key):
            return super().read(size)

    def write(self, data: ReadableBuffer, /) -> int:
        with _translated(f"writing {self._where}", self._key):
            return super().write(data)

    def close(self) -> None:
        with _translated(f"closing {self._where}", self._key):
            super().close()


class _Reader(io.BufferedReader):
    """An open object file, with what ``Store.open`` says of a read: its size."""

    #: A file has no ETag: no version to name.
    etag: str | None = None

    def __init__(self, raw: _File, size: int) -> None:
        super().__init__(raw)
        self.size = size


class DirectoryStore:
    """The ``Store`` of one directory, plus the file operations a file repository needs.

    Beyond the protocol, a file repository streams an object into a file from
    :meth:`new_temp` and :meth:`publish`-es it, reads objects with :meth:`open` and
    refreshes them with :meth:`touch`. The clock is this machine's. File times come
    from the kernel's coarser clock and may trail ``datetime.now()`` by milliseconds,
    far less than the whole second to which S3 truncates its times.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """NotExistError if ``root`` is missing or not a directory."""
        self.root = Path(os.path.abspath(root))
        self._root = str(self.root)
        self._temp = os.path.join(self._root, TEMP_DIR)
        with _translated(f"opening the repository directory {self._root}"):
            try:
                mode = os.stat(self._root).st_mode
            except _ABSENT as error:
                raise NotExistError(
                    f"the repository directory {self._root} does not exist"
                ) from error
        if not stat.S_ISDIR(mode):
            raise NotExistError(f"the repository directory {self._root} is not a directory")

    def __repr__(self) -> str:
        return f"DirectoryStore({self._root!r})"

    # -- keys ---------------------------------------------------------------------------

    def where(self, key: str) -> str:
        return f"file://{self._root}/{key}"

    def _path(self, key: str) -> str:
        problem = _path_problem(key) if isinstance(key, str) else "it is not a string"
        if problem is not None:
            raise InvalidArgumentError(
                f"invalid key {key!r}: {problem}", key=key if isinstance(key, str) else None
            )
        return os.path.join(self._root, key)

    def path_of(self, key: str) -> Path:
        """The file that holds ``key``, which may not exist.

        InvalidArgumentError for a key that cannot name a file below the root: empty,
        absolute, with an empty, ``.`` or ``..`` segment, NUL or a backslash, or in
        ``.s3repo-tmp/``. Every method checks its keys so.
        """
        return Path(self._path(key))

    # -- reading ------------------------------------------------------------------------

    def head(self, key: str) -> Stat | None:
        """None for a missing key, and for a directory (keys lie under it; it is none)."""
        path = self._path(key)
        with _translated(f"looking at {self.where(key)}", key):
            try:
                st = os.stat(path)
            except _ABSENT:
                return None
        if not stat.S_ISREG(st.st_mode):
            return None
        modified = datetime.fromtimestamp(st.st_mtime, UTC)
        return Stat(key, st.st_size, modified, datetime.now(UTC), None)

    def open(
        self, key: str, start: int = 0, *, if_match: str | None = None, hashed: bool = False
    ) -> _Reader:
        """``key`` open for reading from ``start``: seekable, and its reads raise the
        library's errors; its ``size`` is what is left to read from ``start``. A file
        has no transit checksum to skip, whatever ``hashed`` says.

        NotExistError if ``key`` is missing (or a directory). A file has no versions
        to pin a read to (no ETag), so ``if_match`` is an InvalidArgumentError.
        """
        if if_match is not None:
            raise InvalidArgumentError(f"{self.where(key)}: a file has no ETag to match")
        path, where = self._path(key), self.where(key)
        with _translated(f"opening {where}", key):
            try:
                raw = _File(path, "rb", where, key)
            except _ABSENT as error:
                raise NotExistError(f"{where} does not exist", key=key, code="ENOENT") from error
            try:
                size = os.fstat(raw.fileno()).st_size
                if start:
                    raw.seek(start)
            except BaseException:
                raw.close()
                raise
        return _Reader(raw, max(0, size - start))

    def server_sha256(self, key: str) -> bytes | None:
        """None: a directory keeps no checksum of its files."""
        return None

    def read(self, key: str) -> bytes:
        with self.open(key) as file:
            return file.read()

    def list_pages(
        self, prefix: str, start_after: str = "", page_size: int | None = None
    ) -> Iterator[Page]:
        """Pages of at most ``page_size`` keys (by default and at most 1000, as on S3).

        ``prefix`` is a string prefix (``objects/sha256:a`` lists ``objects/sha256:ab…``),
        and only the directory named by its part before the last ``/`` is walked. Each
        page is a fresh scan from the last key of the one before (S3's continuation), so
        it shows what existed when it was asked for; a file removed before its stat is
        left out. InvalidArgumentError, raised by this call rather than by the first
        page, for a prefix whose directory part is no key's, or a ``page_size`` below 1.
        """
        if not isinstance(prefix, str) or not isinstance(start_after, str):
            raise InvalidArgumentError("a listing's prefix and start_after are strings")
        base, slash, _ = prefix.rpartition("/")
        problem = None
        if "\0" in prefix or "\\" in prefix:
            problem = "it holds NUL or a backslash"
        elif slash:
            problem = _path_problem(base)
        if problem is not None:
            raise InvalidArgumentError(f"invalid listing prefix {prefix!r}: {problem}")
        if page_size is not None and page_size < 1:
            raise InvalidArgumentError(f"a page holds at least one key, not {page_size}")
        return self._pages(prefix, base, start_after, min(page_size or _MAX_KEYS, _MAX_KEYS))

    def _pages(self, prefix: str, base: str, after: str, size: int) -> Iterator[Page]:
        while True:
            sent_at = time.monotonic()
            with _translated(f"listing {self.where(prefix)}"):
                items = self._scan(prefix, base, after, size + 1)
            truncated = len(items) > size
            del items[size:]
            yield Page(sent_at, items, truncated, datetime.now(UTC))
            if not truncated:
                return
            after = items[-1].key

    def _scan(self, prefix: str, base: str, after: str, count: int) -> list[ObjectInfo]:
        """The first ``count`` objects that start with ``prefix`` and sort after ``after``."""
        top = os.path.join(self._root, base) if base else self._root
        objects = self._walk(top, f"{base}/" if base else "", prefix, after)
        return list(itertools.islice(objects, count))

    def _walk(self, directory: str, dir_key: str, prefix: str, after: str) -> Iterator[ObjectInfo]:
        """Each object below ``directory``, whose keys start with ``dir_key``, that starts
        with ``prefix`` and sorts after ``after``, in key order.

        A directory ``d`` sorts as ``d/``: its keys are those from ``d/`` to the next name
        beside it, so visiting names in that order visits keys in order. Names come off a
        heap, and one that an lstat shows to be a directory goes back on as ``d/``: a page
        from a large directory costs one listing of it and a stat per key shown, not a
        sort or a stat per name. Names wholly at or before ``after`` are dropped unseen.
        """
        try:
            names = os.listdir(directory)
        except _ABSENT:
            return  # no such directory, or removed since its parent was read
        start = prefix[len(dir_key) :]  # what names must start with (below the prefix: "")
        if start:
            names = [name for name in names if name.startswith(start)]
        if after.startswith(dir_key):
            # Every key from a name below the rest of ``after`` and not a beginning of it
            # sorts below that rest too, so is at or before ``after``.
            rest = after[len(dir_key) :]
            if rest:
                names = [name for name in names if name >= rest or rest.startswith(name)]
        elif after > dir_key:
            return  # every key here is before ``after``
        heapq.heapify(names)
        while names:
            name = heapq.heappop(names)
            if name.endswith("/"):  # a directory, in its place among the keys
                subdirectory = os.path.join(directory, name[:-1])
                yield from self._walk(subdirectory, f"{dir_key}{name}", prefix, after)
                continue
            if (not dir_key and name == TEMP_DIR) or not _is_text(name):
                continue
            key, path = f"{dir_key}{name}", os.path.join(directory, name)
            try:
                st = os.lstat(path)
                if stat.S_ISDIR(st.st_mode):
                    # Its keys start with ``key/``: all are after ``after`` unless that is
                    # past ``key/`` and not in it.
                    if not (f"{key}/" < after and not after.startswith(f"{key}/")):
                        heapq.heappush(names, f"{name}/")
                    continue
                if stat.S_ISLNK(st.st_mode):
                    st = os.stat(path)  # an object is what a read would see
            except _ABSENT:
                continue  # removed since the directory was read
            if stat.S_ISREG(st.st_mode) and key > after:
                yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    # -- writing ------------------------------------------------------------------------

    def new_temp(self) -> tuple[Path, BinaryIO]:
        """A new, empty temporary file, open for writing, for a file repository to write
        an object into; its writes raise the library's errors.

        It lies under ``<root>/.s3repo-tmp/`` (made on demand), which no listing shows,
        and its mode follows the umask like any file's. The caller closes it, then
        :meth:`publish`-es it, or removes it with :meth:`discard`.
        """
        with _translated(f"creating a temporary file in {self._temp}"):
            path, fd = self._create_temp()
            try:
                return Path(path), io.BufferedWriter(_File(fd, "wb", path, None))
            except BaseException:
                os.close(fd)
                self._discard(path)
                raise

    def _create_temp(self) -> tuple[str, int]:
        """A new temporary file: its path and a descriptor open for writing."""
        # Not mkstemp: its files are 0o600, whatever the umask.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        made_dir = False
        while True:
            path = os.path.join(self._temp, secrets.token_hex(8))
            try:
                return path, os.open(path, flags, 0o666)
            except FileNotFoundError:
                if made_dir:
                    raise
                os.makedirs(self._temp, exist_ok=True)
                made_dir = True
            except FileExistsError:
                continue  # a name already taken: draw another

    def publish(self, temp: str | os.PathLike[str], key: str) -> None:
        """Make the finished, closed temporary file ``temp`` (from :meth:`new_temp`) be
        ``key``, atomically: readers see the old bytes or the new.

        Its data is made durable, it is renamed onto ``key`` (making directories as
        needed) and the rename is made durable. NotExistError if ``temp`` is gone; on
        any error ``temp`` is removed and ``key`` is as it was.
        """
        path, temp = self._path(key), os.fspath(temp)
        try:
            with _translated(f"publishing {temp} as {self.where(key)}", key):
                fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except RepositoryError:
            self._discard(temp)
            raise
        self._rename(temp, path, key)

    def put(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> datetime:
        """Write ``data`` to ``key`` atomically and durably (a temporary file, renamed).

        ``metadata`` is not kept: it is S3 object metadata, which files lack and which
        the repository never reads back. A failed put leaves ``key`` as it was.
        """
        path = self._path(key)
        with _translated(f"writing {self.where(key)}", key):
            temp, fd = self._create_temp()
            try:
                with open(fd, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
            except BaseException:
                self._discard(temp)
                raise
        self._rename(temp, path, key)
        return datetime.now(UTC)

    def copy(self, src_key: str, dst_key: str) -> None:
        """Copy ``src_key`` to ``dst_key`` as :meth:`put` writes: into a temporary file,
        made durable, renamed into place. The copy's mtime is now, as on S3. NotExistError
        if ``src_key`` is missing; ``dst_key`` is as it was on any error."""
        path, where = self._path(dst_key), self.where(dst_key)
        with self.open(src_key) as source, _translated(f"copying to {where}", dst_key):
            temp, fd = self._create_temp()
            try:
                with open(fd, "wb") as out:
                    while chunk := source.read(_COPY_CHUNK):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            except BaseException:
                self._discard(temp)
                raise
        self._rename(temp, path, dst_key)

    def _rename(self, temp: str, path: str, key: str) -> None:
        """Rename ``temp`` onto ``path`` and make that durable; on error remove ``temp``."""
        try:
            try:
                os.replace(temp, path)
            except FileNotFoundError:
                if not os.path.lexists(temp):
                    raise
                self._make_parents(os.path.dirname(path))
                os.replace(temp, path)
            _fsync_dir(os.path.dirname(path))
        except _IN_THE_WAY as error:
            self._discard(temp)
            clash = (
                "keys lie under it (it is a directory)"
                if isinstance(error, IsADirectoryError)
                else "a key lies on its path (a file where a directory must be)"
            )
            raise NotSupportedError(
                f"cannot write {self.where(key)}: {clash}, and a directory cannot hold "
                "both a key and keys under it",
                key=key,
                code=_error_code(error),
            ) from error
        except OSError as error:
            self._discard(temp)
            raise translate_os_error(error, f"writing {self.where(key)}", key) from error
        except BaseException:
            self._discard(temp)
            raise

    def _make_parents(self, directory: str) -> None:
        """Make ``directory`` and any missing above it, each new entry durable.

        It stops at the root: a root removed meanwhile is not made again.
        """
        missing: list[str] = []
        while directory != self._root and not os.path.isdir(directory):
            missing.append(directory)
            directory = os.path.dirname(directory)
        for new in reversed(missing):
            try:
                os.mkdir(new)
            except FileExistsError:
                if os.path.isdir(new):
                    continue  # made by a concurrent writer, who makes it durable
                raise
            _fsync_dir(os.path.dirname(new))

    def touch(self, key: str) -> bool:
        """Set ``key``'s modification time to now, which refreshes it as an object;
        False if it is gone. Write access to the file suffices, as with ``touch(1)``."""
        path = self._path(key)
        with _translated(f"touching {self.where(key)}", key):
            try:
                if not stat.S_ISREG(os.stat(path).st_mode):
                    return False
                os.utime(path)
            except _ABSENT:
                return False
        return True

    # -- deleting -----------------------------------------------------------------------

    def discard(self, temp: str | os.PathLike[str]) -> None:
        """Remove an unpublished file from :meth:`new_temp`; a failure is only logged."""
        self._discard(os.fspath(temp))

    def _discard(self, temp: str) -> None:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.warning("could not remove the temporary file %s: %s", temp, error)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with _translated(f"deleting {self.where(key)}", key), suppress(*_ABSENT):
            os.unlink(path)

    def delete_unchanged(self, key: str, seen: Stat) -> bool:
        """Remove ``key`` only if it is still the file ``seen`` (size and mtime).

        Atomically: the file is renamed aside first, so a writer's rename that lands
        meanwhile is never removed; if what was taken aside is another version, it is
        linked back (unless a newer one is there already) and False returned.
        """
        path, where = self._path(key), self.where(key)
        with _translated(f"deleting {where}", key):
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    return False
            except _ABSENT:
                return False
            aside = os.path.join(self._temp, f"{secrets.token_hex(8)}.deleting")
            os.makedirs(self._temp, exist_ok=True)
            try:
                os.rename(path, aside)
            except _ABSENT:
                return False
            try:
                st = os.lstat(aside)
                when = datetime.fromtimestamp(st.st_mtime, UTC)
                if stat.S_ISREG(st.st_mode) and (st.st_size, when) == (seen.size, seen.modified):
                    _fsync_dir(os.path.dirname(path))
                    return True
                with suppress(FileExistsError):  # a newer version is there: keep it
                    os.link(aside, path)
                return False
            finally:
                self._discard(aside)

    def delete_quietly(self, key: str) -> None:
        """Like :meth:`delete`, but logs a failure; only a bad key (a bug) raises."""
        self._path(key)
        try:
            self.delete(key)
        except RepositoryError as error:
            log.warning("could not remove %s (collection will): %s", self.where(key), error)

    def delete_many(self, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Remove each of ``keys``: ``{key: (code, message)}`` of those that could not be.

        The code is ``AccessDenied`` for a refusal, as on S3, else the errno's name
        (``EIO``). A local unlink's outcome is always known, so this never raises
        DeleteOutcomeUnknown. InvalidArgumentError, before anything is removed, for
        more than 1000 keys or a bad one.
        """
        if len(keys) > _MAX_KEYS:
            raise InvalidArgumentError(f"at most {_MAX_KEYS} keys per delete, not {len(keys)}")
        paths = [(key, self._path(key)) for key in keys]
        failed: dict[str, tuple[str, str]] = {}
        for key, path in paths:
            try:
                os.unlink(path)
            except _ABSENT:
                pass
            except OSError as error:
                failed[key] = (_error_code(error), f"{error.strerror or error}: {path}")
        return failed

    # -- unfinished writes ----------------------------------------------------------------

    def list_uploads(self, prefix: str) -> Iterator[PendingUpload]:
        """The temporary files of writes not yet published, as uploads under ``prefix``.

        They play the part of S3's multipart uploads: a writer killed mid-write leaves
        one behind, and collection removes those begun before its threshold. The
        temporary directory serves the whole root, so every prefix's collection sees
        them all (each is named ``<prefix>uploads/<name>``).
        """
        with _translated(f"listing {self._temp}"):
            try:
                names = sorted(os.listdir(self._temp))
            except _ABSENT:
                return
        for name in names:
            try:
                st = os.stat(os.path.join(self._temp, name))
            except OSError:
                continue  # published or removed meanwhile
            when = datetime.fromtimestamp(st.st_mtime, UTC)
            yield PendingUpload(f"{prefix}uploads/{name}", name, when)

    def abort_upload(self, upload: PendingUpload) -> bool:
        """Remove the temporary file of ``upload``; False if it was already gone."""
        if _path_problem(upload.upload_id) is not None or "/" in upload.upload_id:
            raise InvalidArgumentError(f"not a temporary file name: {upload.upload_id!r}")
        path = os.path.join(self._temp, upload.upload_id)
        with _translated(f"removing {path}"):
            try:
                os.unlink(path)
            except _ABSENT:
                return False
        return True

    def server_now(self, prefix: str) -> datetime:
        """This machine's clock, which is the store's."""
        return datetime.now(UTC)


def _is_store(store: DirectoryStore) -> None:
    """mypy checks here that DirectoryStore satisfies the Store protocol."""
    from ._store import Store

    _: Store = store
