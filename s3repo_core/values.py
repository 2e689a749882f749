"""Python values as repository objects: how a value becomes bytes, and back.

Stored by digest, a value is written once however often it is produced, so each
kind of value gets an encoding in which equal values give equal bytes:

=========  ===========================================  ===============================
format     value                                        object
=========  ===========================================  ===============================
bytes      ``bytes``, ``bytearray``, ``memoryview``     the bytes as they are
file       a ``pathlib.Path`` to a regular file         its bytes, streamed from disk
tree       a ``pathlib.Path`` to a directory            a tree object (``_tree``) naming
                                                        each file, stored first
parquet    ``pyarrow.Table``, ``pandas.DataFrame``,     Parquet with the fixed
           ``polars.DataFrame``                         :data:`PARQUET_WRITE_OPTIONS`
pickle     anything else                                ``pickle`` protocol
                                                        :data:`PICKLE_PROTOCOL`
=========  ===========================================  ===============================

Parquet bytes are fixed for given pyarrow (and pandas or polars) versions: the writer's name
and version are in the file, so an upgrade may give equal data a new digest once.
Pickles are as deterministic as pickle is (a ``set`` of ``str`` is ordered by the
process's hash seed). Pickle runs code when loaded: both directions can be refused
(``allow_pickle=False``, :class:`PickleRefusedError`).

Nothing here knows Dagster; ``repo_pipelines.S3RepoIOManager`` is a shell over
:func:`store_value` and :func:`load_value`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePath
from typing import IO, Any, BinaryIO, cast

import pyarrow as pa
import pyarrow.parquet as pq

from ._digest import Digest, File
from ._errors import IntegrityError, InvalidArgumentError, NotExistError
from ._repository import Repository
from ._tree import Tree, TreeEntry, materialize, scan_directory

__all__ = [
    "PARQUET_WRITE_OPTIONS",
    "PICKLE_PROTOCOL",
    "PickleRefusedError",
    "StoredValue",
    "ValueFormat",
    "check_value",
    "load_value",
    "store_value",
    "write_parquet",
]

#: The pickle protocol of every pickled value: pinned, so equal values give equal bytes
#: whichever Python version writes them (5 is read by Python 3.8 and later).
PICKLE_PROTOCOL = 5

#: The Parquet writer's settings: fixed, so that equal tables give equal bytes.
PARQUET_WRITE_OPTIONS: Mapping[str, Any] = {
    "version": "2.6",
    "data_page_version": "1.0",
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 1024 * 1024,
    "data_page_size": 1024 * 1024,
    "store_schema": True,
    "write_page_index": False,
    "write_page_checksum": False,
}

_CHUNK = 1024 * 1024


class ValueFormat(StrEnum):
    """How a value's object encodes it (the ``format`` an output's metadata shows)."""

    BYTES = "bytes"
    FILE = "file"
    TREE = "tree"
    PARQUET = "parquet"
    PICKLE = "pickle"


class PickleRefusedError(InvalidArgumentError):
    """A value would be pickled, or a pickle loaded, and pickle is not allowed."""


@dataclass(frozen=True, slots=True)
class StoredValue:
    """What :func:`store_value` stored.

    ``file`` is the value's object (for a tree, the tree object), whose digest names
    the value. ``objects`` is every object the value needs, that one first: what a
    record of this value must keep live. ``stored_before`` says the object was in the
    repository before this store (found by a stat just before it; a concurrent writer
    of the same bytes may make both say False). ``written`` is what this store
    uploaded, of ``objects``: the rest was stored already, which is dedup at work.
    """

    file: File
    format: ValueFormat
    stored_before: bool
    objects: tuple[File, ...]
    #: The base name of a stored file or directory, so that it loads under that name.
    name: str | None = None
    #: The listing of a stored directory.
    tree: Tree | None = None
    #: The number of rows of a stored table.
    rows: int | None = None
    written: tuple[File, ...] = ()

    @property
    def digest(self) -> Digest:
        return self.file.digest


def _present(repo: Repository, digest: Digest) -> bool:
    try:
        repo.stat(digest)
    except NotExistError:
        return False
    return True


def _file_of(stream: IO[bytes]) -> File:
    """The File of a seekable stream's bytes from its start; the stream is left at 0."""
    stream.seek(0)
    sha = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        sha.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return File(Digest.from_bytes(sha.digest()), size)


def _store_stream(repo: Repository, stream: IO[bytes]) -> tuple[File, bool]:
    """Store a seekable stream without holding it in memory: hash it, stat, put_file."""
    file = _file_of(stream)
    before = _present(repo, file.digest)
    repo.put_file(file, cast(BinaryIO, stream))
    return file, before


def _store_bytes(repo: Repository, data: bytes) -> tuple[File, bool]:
    digest = Digest.of(data)
    before = _present(repo, digest)
    if repo.put(data) != digest:
        raise IntegrityError(f"the repository stored {digest} under another digest", digest=digest)
    return File(digest, len(data)), before


def _dataframe_class(module: str = "pandas") -> type | None:
    """``module``'s DataFrame (pandas or polars) if it has been imported: a value can be
    one only then, and neither is a dependency of s3repo."""
    found = sys.modules.get(module)
    return cast(type, found.DataFrame) if found is not None else None


def _as_table(value: object) -> pa.Table | None:
    """``value`` as an Arrow table, if it is a table of a kind stored as Parquet."""
    if isinstance(value, pa.Table):
        return value
    pandas, polars = _dataframe_class("pandas"), _dataframe_class("polars")
    if pandas is not None and isinstance(value, pandas):
        return pa.Table.from_pandas(value)
    if polars is not None and isinstance(value, polars):
        return cast(pa.Table, value.to_arrow())  # type: ignore[attr-defined]
    return None


def write_parquet(table: pa.Table, out: str | os.PathLike[str] | IO[bytes]) -> None:
    """Write ``table`` as Parquet with :data:`PARQUET_WRITE_OPTIONS`."""
    pq.write_table(table, cast(Any, out), **PARQUET_WRITE_OPTIONS)


def store_value(repo: Repository, value: object, *, allow_pickle: bool = True) -> StoredValue:
    """Store ``value`` in ``repo`` in the encoding of its kind (see the module docstring).

    Files, directories, tables and pickles are spooled through disk, never held whole
    in memory. A directory's files are stored before its tree object, so a tree
    never names a missing file. Raises PickleRefusedError for a value that only pickle
    could store when ``allow_pickle`` is false; InvalidArgumentError for a path that is
    neither a file nor a directory (NotExistError if it is missing), a directory that
    holds a symlink, or a value pickle cannot encode; and what the repository raises.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        file, before = _store_bytes(repo, bytes(value))
        return _single(file, ValueFormat.BYTES, before)
    if isinstance(value, PurePath):
        return _store_path(repo, Path(value))
    table = _as_table(value)
    if table is not None:
        with tempfile.TemporaryFile() as spool:
            write_parquet(table, spool)
            file, before = _store_stream(repo, spool)
        return _single(file, ValueFormat.PARQUET, before, rows=table.num_rows)
    if not allow_pickle:
        raise PickleRefusedError(
            f"a {type(value).__qualname__} would be stored as a pickle, and pickle is not "
            "allowed (allow_pickle=False): return bytes, a pathlib.Path, a pyarrow.Table "
            "or a pandas or polars DataFrame, or allow pickle"
        )
    with tempfile.TemporaryFile() as spool:
        try:
            pickle.dump(value, spool, protocol=PICKLE_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            raise InvalidArgumentError(
                f"a {type(value).__qualname__} cannot be pickled: {error}"
            ) from error
        file, before = _store_stream(repo, spool)
    return _single(file, ValueFormat.PICKLE, before)


def _single(file: File, format: ValueFormat, before: bool, **more: Any) -> StoredValue:
    """A value of one object, written unless it was stored before."""
    return StoredValue(file, format, before, (file,), written=() if before else (file,), **more)


def _store_path(repo: Repository, path: Path) -> StoredValue:
    if path.is_file():
        with path.open("rb") as stream:
            file, before = _store_stream(repo, stream)
        return _single(file, ValueFormat.FILE, before, name=path.name)
    if path.is_dir():
        found = scan_directory(path)
        written: list[File] = []
        stored = (
            repo.put_files([p for _, p, _ in found], on_written=lambda _, f: written.append(f))
            if found
            else []
        )
        tree = Tree.of(
            [
                TreeEntry(relative, file, executable)
                for (relative, _, executable), file in zip(found, stored, strict=True)
            ]
        )
        file, before = _store_bytes(repo, tree.encode())
        objects = (file, *(f for f in tree.files() if f != file))
        if not before:
            written.insert(0, file)
        return StoredValue(
            file,
            ValueFormat.TREE,
            before,
            objects,
            name=path.name,
            tree=tree,
            written=tuple(dict.fromkeys(written)),
        )
    if not path.exists():
        raise NotExistError(f"{path} does not exist")
    raise InvalidArgumentError(f"{path} is neither a file nor a directory")


# -- loading ---------------------------------------------------------------------------


def read_verified(repo: Repository, digest: Digest) -> bytes:
    """The object's bytes, read to the end (so the stream verifies them) and checked."""
    with repo.get(digest) as stream:
        data = stream.read()
    if Digest.of(data) != digest:
        raise IntegrityError(f"{digest} read back as other bytes", digest=digest)
    return data


def check_value(
    repo: Repository,
    digest: Digest | str,
    format: ValueFormat | str,
    *,
    size: int | None = None,
    verify: bool = False,
) -> list[str]:
    """What is wrong with a stored value, in words; empty if nothing is.

    The value's object must be stored, with ``size`` bytes if given; a tree's files
    too (the tree itself is read, and so verified). With ``verify`` every object is
    read back and re-hashed (``Repository.verify``, concurrently), which costs its
    bytes in transfer; without, a stat each.
    """
    digest = digest if isinstance(digest, Digest) else Digest.parse(digest)
    fmt = ValueFormat(format)
    problems: list[str] = []
    objects = [File(digest, size) if size is not None else digest]
    if fmt is ValueFormat.TREE:
        try:
            tree = Tree.decode(read_verified(repo, digest))
        except NotExistError:
            return [f"the tree object {digest} is missing"]
        except IntegrityError as error:
            return [f"the tree object {digest} does not verify: {error}"]
        objects += tree.files()
    objects = list(dict.fromkeys(objects))
    if verify:
        report = repo.verify(objects)
        problems += [f"{digest} is missing" for digest in report.missing]
        problems += [
            f"{digest} is truncated (shorter than its size)" for digest in report.truncated
        ]
        problems += [
            f"{digest} does not verify: its bytes hash otherwise" for digest in report.corrupt
        ]
        return problems
    for wanted in objects:
        problem = _check_stored(repo, wanted)
        if problem is not None:
            problems.append(problem)
    return problems


def _check_stored(repo: Repository, wanted: File | Digest) -> str | None:
    digest = wanted.digest if isinstance(wanted, File) else wanted
    try:
        found = repo.stat(digest)
    except NotExistError:
        return f"{digest} is missing"
    if isinstance(wanted, File) and found.size != wanted.size:
        return f"{digest} is stored with {found.size} bytes, not {wanted.size}"
    return None


def _wants(as_type: object, base: type | None) -> bool:
    return base is not None and isinstance(as_type, type) and issubclass(as_type, base)


def _wants_path(as_type: object) -> bool:
    return as_type is os.PathLike or _wants(as_type, PurePath)


def _native(as_type: object) -> bool:
    """No particular type asked for: load the value as what it was stored as."""
    return as_type in (None, object, Any) or not isinstance(as_type, type)


_SUFFIXES = {ValueFormat.PARQUET: ".parquet", ValueFormat.PICKLE: ".pickle"}


def load_value(
    repo: Repository,
    digest: Digest | str,
    format: ValueFormat | str,
    *,
    as_type: object = None,
    allow_pickle: bool = True,
    work_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
    concurrency: int = 8,
) -> object:
    """The value stored as ``digest`` in ``format``, every byte verified, as ``as_type``.

    Without a type (None, ``object``, or a typing construct such as ``Any``) a value
    loads as what it was stored as: bytes, a Path (file or directory), a
    ``pyarrow.Table``, or the unpickled object. ``bytes`` gives the object's bytes
    whatever its format; a ``Path`` type gives a local copy (a tree: the directory),
    written into a new directory under ``work_dir`` (default: the system's temporary
    directory) that the caller removes when done, named ``name`` if given; a
    ``pandas.DataFrame``, ``polars.DataFrame`` or ``pyarrow.Table`` type needs a
    parquet object; ``Tree``
    gives a tree's listing. Raises InvalidArgumentError for a type the format cannot
    give, PickleRefusedError for a pickle when ``allow_pickle`` is false, and what the
    repository raises (NotExistError, IntegrityError).
    """
    digest = digest if isinstance(digest, Digest) else Digest.parse(digest)
    try:
        fmt = ValueFormat(format)
    except ValueError:
        known = ", ".join(f.value for f in ValueFormat)
        raise InvalidArgumentError(f"unknown value format {format!r:.50}: one of {known}") from None
    if name is not None and (not name or "/" in name or "\0" in name or name in (".", "..")):
        raise InvalidArgumentError(f"a value's name is one path component, got {name!r:.100}")
    if as_type is bytes:
        return read_verified(repo, digest)
    if _wants_path(as_type) or (_native(as_type) and fmt in (ValueFormat.FILE, ValueFormat.TREE)):
        where = Path(tempfile.mkdtemp(prefix="s3repo-", dir=work_dir))
        target = where / (name or digest.hex + _SUFFIXES.get(fmt, ""))
        if fmt is ValueFormat.TREE:
            tree = Tree.decode(read_verified(repo, digest))
            return materialize(repo, tree, target, concurrency=concurrency)
        repo.get_file(digest, target)
        return target
    if as_type is Tree:
        if fmt is not ValueFormat.TREE:
            raise InvalidArgumentError(f"{digest} holds {fmt.value}, not a tree")
        return Tree.decode(read_verified(repo, digest))
    if fmt is ValueFormat.PARQUET:
        pandas, polars = _dataframe_class("pandas"), _dataframe_class("polars")
        wanted = (pa.Table, pandas, polars)
        if not (_native(as_type) or any(_wants(as_type, kind) for kind in wanted)):
            raise InvalidArgumentError(
                f"{digest} holds a table (parquet): it loads as pyarrow.Table, a pandas "
                f"or polars DataFrame, bytes or a Path, not {as_type!r:.80}"
            )
        with tempfile.TemporaryDirectory(prefix="s3repo-", dir=work_dir) as spool:
            local = Path(spool) / "table.parquet"
            repo.get_file(digest, local)
            table = pq.read_table(local)
        if _wants(as_type, pandas):
            return table.to_pandas()
        if _wants(as_type, polars):
            return sys.modules["polars"].from_arrow(table)
        return table
    if fmt is ValueFormat.PICKLE:
        if not allow_pickle:
            raise PickleRefusedError(
                f"{digest} is a pickle, and pickle is not allowed (allow_pickle=False): "
                "unpickling runs code the stored bytes name"
            )
        return pickle.loads(read_verified(repo, digest))
    if fmt is ValueFormat.BYTES and _native(as_type):
        return read_verified(repo, digest)
    raise InvalidArgumentError(f"{digest} holds {fmt.value}: it cannot load as {as_type!r:.80}")
