"""Liveset manifests: Parquet files listing the digests that must be kept.

One row per live object::

    digest  fixed_size_binary(32)   the raw SHA-256 (a "sha256:<hex>" string column
                                    written by another tool is accepted too)
    size    int64                   its size in bytes, >= 0
    source  string                  free text: where the object came from

and file-level key-value metadata ``s3repo.manifest = 1`` (format and version),
``s3repo.created_at`` (ISO-8601, UTC), ``s3repo.created_by``, ``s3repo.kind`` and any
number of ``s3repo.label.<name>`` (free text, e.g. the asset a record is of).

A manifest is of one of two kinds, and the kind says what its creation time means:

- a **snapshot** (the default, and what a file without ``s3repo.kind`` is) lists the
  whole liveset of its source as of ``created_at``; the source may have stored objects
  since that only its next snapshot will name, so collection keeps whatever was
  modified after the oldest snapshot (less the grace), and a file without a creation
  time is rejected;
- a **record** names objects that were all stored before it was written, and never
  changes. Its age holds nothing back: it must be written promptly instead (see
  ``s3repo_core.records``), and it keeps what it names for as long as it exists.

Rows are written sorted by digest, in row groups of :data:`BATCH_ROWS`, with an index
of each group's first and last digest (``s3repo.sorted``, ``s3repo.index``; see
``_rowgroups``), so that a reader of one shard's digests reads only the groups that
can hold them (``_liveset_slices``). Files without the index are read whole.

A manifest lives at a local path or at ``s3://bucket/key``. Writes are atomic (a temp
file, then ``os.replace`` or one upload), so a failed write never leaves half a
manifest. Reads fail closed: every row is validated, and a bad row, a file that is not
Parquet, or a missing file raises; nothing is returned half-read. Rows are numbered
from 0 in error messages. Rows stream through in batches of :data:`BATCH_ROWS`, so
no step needs one Python object per row of a whole manifest.

Every function that reads or writes ``s3://`` takes the boto3 client to use as
``client=``; without one, the client set for the bucket with
:func:`~s3repo_core.set_client` is used, else the default client (see ``_client``).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ._bucket import S3Bucket
from ._client import client_for
from ._digest import Digest
from ._errors import (
    ConflictError,
    InvalidArgumentError,
    NotExistError,
    NotSupportedError,
    RepositoryError,
)
from ._inorder import in_order
from ._names import RESERVED_AREAS, check_bucket, reserved_area_of
from ._rowgroups import Group, index_metadata, read_index
from ._sortedruns import digest_column, digests_of, joined, sorted_batches
from .liveset import DIGEST_DTYPE, in_spans, is_sorted

__all__ = [
    "BATCH_ROWS",
    "MANIFEST_SCHEMA",
    "LivesetInfo",
    "Manifest",
    "ManifestInfo",
    "ManifestKind",
    "ManifestRow",
    "check_manifest_location",
    "manifest_rows",
    "manifests_naming",
    "read_manifest",
    "read_manifest_infos",
    "remove_manifest",
    "write_manifest",
]

#: Rows per written row group and per batch read.
BATCH_ROWS = 65536

FORMAT_KEY = b"s3repo.manifest"
FORMAT_VERSION = b"1"
CREATED_AT_KEY = b"s3repo.created_at"
CREATED_BY_KEY = b"s3repo.created_by"
KIND_KEY = b"s3repo.kind"
LABEL_PREFIX = b"s3repo.label."

#: What a manifest is: the whole liveset of a source at a time, or a record of objects
#: stored before it was written (see the module docstring).
ManifestKind = Literal["snapshot", "record"]
KINDS: tuple[ManifestKind, ...] = ("snapshot", "record")

#: The schema :func:`write_manifest` writes and :class:`Manifest` holds.
_MANIFEST_FIELDS: list[pa.Field[Any]] = [
    pa.field("digest", pa.binary(32), nullable=False),
    pa.field("size", pa.int64(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
]
MANIFEST_SCHEMA = pa.schema(_MANIFEST_FIELDS)

_DIGEST_TEXT = r"^sha256:[0-9a-f]{64}$"
_DIGEST_TEXT_LENGTH = len("sha256:") + 64
_INT64_MAX = 2**63 - 1
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_HEX_VALUES = np.full(256, 0, dtype=np.uint8)
_HEX_VALUES[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One live object: its digest, its size in bytes and where it came from."""

    digest: Digest
    size: int
    source: str

    def __post_init__(self) -> None:
        if not isinstance(self.digest, Digest):
            raise InvalidArgumentError(f"digest must be a Digest, got {type(self.digest).__name__}")
        if (
            isinstance(self.size, bool)
            or not isinstance(self.size, int)
            or not 0 <= self.size <= _INT64_MAX
        ):
            raise InvalidArgumentError(f"size must be an int in [0, 2**63), got {self.size!r}")
        if not isinstance(self.source, str):
            raise InvalidArgumentError(f"source must be a str, got {type(self.source).__name__}")


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """One manifest: where, how many rows, when and by what it was made.

    What :func:`write_manifest` wrote, and what :func:`read_liveset_with_info` read.
    """

    location: str
    num_rows: int
    created_at: datetime
    created_by: str
    kind: ManifestKind = "snapshot"
    #: The ``s3repo.label.<name>`` metadata, by name.
    labels: Mapping[str, str] = field(default_factory=dict)
    #: The version read: an S3 ETag, or ``<size>-<mtime_ns>`` of a local file; None
    #: where nothing was read. A collection's shard steps read exactly this version.
    version: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class LivesetInfo:
    """The manifests behind a liveset.

    Collection must not delete what was written after the *oldest* manifest was made:
    its producer may have written objects since that only its next manifest will list.
    """

    manifests: tuple[str, ...]
    num_rows: int
    oldest_created_at: datetime
    newest_created_at: datetime
    #: Each manifest read, in the order of ``manifests``.
    per_manifest: tuple[ManifestInfo, ...] = ()

    @property
    def oldest_snapshot_at(self) -> datetime | None:
        """The creation time of the oldest snapshot (None: all are records), which is
        what holds a collection's threshold back."""
        snapshots = [info.created_at for info in self.per_manifest if info.kind == "snapshot"]
        return min(snapshots, default=None)


class Manifest:
    """A fully validated manifest, held as a compact Arrow table (not Python objects).

    Iterating yields :class:`ManifestRow` s, built one batch at a time.
    """

    def __init__(
        self,
        location: str,
        created_at: datetime,
        created_by: str,
        table: pa.Table,
        kind: ManifestKind = "snapshot",
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.location = location
        self.created_at = created_at
        self.created_by = created_by
        self.table = table
        self.kind = kind
        self.labels = dict(labels or {})

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    def __len__(self) -> int:
        return self.num_rows

    def __iter__(self) -> Iterator[ManifestRow]:
        for batch in self.table.to_batches(BATCH_ROWS):
            digests = _digest_array(batch.column(0))
            # Validated columns: non-null int64 and string.
            sizes = cast("list[int]", batch.column(1).to_pylist())
            sources = cast("list[str]", batch.column(2).to_pylist())
            for raw, size, source in zip(digests, sizes, sources, strict=True):
                yield ManifestRow(Digest(raw.tobytes()), size, source)

    def digests(self) -> np.ndarray:
        """Every digest, in file order, as a :data:`~s3repo_core.liveset.DIGEST_DTYPE` array."""
        parts = [_digest_array(chunk) for chunk in self.table.column(0).chunks]
        return np.concatenate(parts) if parts else np.empty(0, dtype=DIGEST_DTYPE)

    def __repr__(self) -> str:
        return (
            f"Manifest({self.location!r}, a {self.kind} of {self.num_rows} rows, "
            f"created {self.created_at.isoformat()} by {self.created_by!r})"
        )


# -- locations ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Location:
    """A local path (bucket None) or an S3 bucket and key."""

    bucket: str | None
    path: str

    @classmethod
    def parse(cls, src: str | os.PathLike[str]) -> _Location:
        if isinstance(src, os.PathLike):
            src = os.fspath(src)
        if not isinstance(src, str) or not src:
            raise InvalidArgumentError(f"a manifest location is a path or s3:// URL, got {src!r}")
        if src.startswith("s3://"):
            bucket, _, key = src[len("s3://") :].partition("/")
            return cls(check_bucket(bucket), key)
        if _SCHEME.match(src):
            raise NotSupportedError(
                f"unsupported manifest location {src!r}: use a local path or s3://bucket/key"
            )
        return cls(None, src)

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.path}" if self.is_s3 else self.path


def check_manifest_location(dest: str | os.PathLike[str] | _Location) -> None:
    """InvalidArgumentError if a manifest may not be written at ``dest``.

    That is an ``s3://`` location inside some repository's key space (see
    :func:`write_manifest`). Callers that do work before they write a manifest (an
    ingest) can check its location first.
    """
    loc = dest if isinstance(dest, _Location) else _Location.parse(dest)
    if not loc.is_s3:
        return
    area = reserved_area_of(loc.path)
    if area is not None:
        reserved = ", ".join(f"{name}/" for name in sorted(RESERVED_AREAS))
        raise InvalidArgumentError(
            f"refusing to write a manifest at {loc}: it is inside the {area}/ area of a "
            f"repository's key space (no manifest goes under {reserved} of any prefix)"
        )


def _remove(path: str) -> None:
    with suppress(FileNotFoundError):
        os.remove(path)


@contextmanager
def _local_copy(loc: _Location, tmpdir: str | None = None, client: Any = None) -> Iterator[str]:
    """A local path holding the manifest at ``loc``, removed afterwards if downloaded."""
    if not loc.is_s3:
        yield loc.path
        return
    if not loc.path or loc.path.endswith("/"):
        raise InvalidArgumentError(f"{loc} names a prefix, not a manifest")
    fd, tmp = tempfile.mkstemp(prefix="s3repo-manifest-", suffix=".parquet", dir=tmpdir)
    os.close(fd)
    try:
        assert loc.bucket is not None
        S3Bucket(loc.bucket, client_for(loc.bucket, client)).download_file(loc.path, tmp)
        yield tmp
    finally:
        _remove(tmp)


#: Bytes a footer read asks for at once: the metadata of any manifest s3repo writes (a
#: few KiB per row group) and the 8 bytes after it, in one request.
FOOTER_READ = 256 * 1024


class _RemoteFile(io.RawIOBase):
    """A manifest in S3 as a seekable file whose bytes are fetched as they are read.

    Reading a footer then costs one GET of the file's last bytes (pyarrow reads the
    footer from the end), not a download of every row: what retention and ``why`` pay
    per record. Reads past what was fetched ask for their range, pinned to the version
    the first read saw.
    """

    def __init__(self, bucket: S3Bucket, key: str, etag: str | None = None) -> None:
        super().__init__()
        self._bucket, self._key = bucket, key
        self._tail, self.size, self.etag = bucket.tail(key, FOOTER_READ, etag)
        self._tail_at = self.size - len(self._tail)
        self._held, self._held_at = b"", 0
        self._position = 0

    def prefetch(self, start: int, end: int) -> None:
        """Fetch ``[start, end)`` in one GET, for the reads that follow (a row group's
        column chunks), in place of whatever was prefetched before."""
        end = min(end, self._tail_at)
        if start < end:
            with self._bucket.open(self._key, start, end, self.etag) as body:
                self._held, self._held_at = body.read(), start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        start = self._position
        end = min(start + len(buffer), self.size)
        if end <= start:
            return 0
        held_end = self._held_at + len(self._held)
        if start >= self._tail_at:
            data = self._tail[start - self._tail_at : end - self._tail_at]
        elif self._held_at <= start and end <= held_end:
            data = self._held[start - self._held_at : end - self._held_at]
        else:
            with self._bucket.open(self._key, start, end, self.etag) as body:
                data = body.read()
        buffer[: len(data)] = data
        self._position = start + len(data)
        return len(data)


@contextmanager
def _opened(loc: _Location, client: Any = None, pinned: str | None = None) -> Iterator[_Reader]:
    """The manifest at ``loc`` opened, its footer read and checked; for S3, a file that
    fetches only the bytes read (see ``_RemoteFile``). ``pinned`` is a version (see
    ``ManifestInfo.version``) the file must still be: ConflictError if it is not."""
    if not loc.is_s3:
        with _Reader(loc.path, str(loc)) as reader:
            if pinned is not None and reader.version != pinned:
                raise _changed(loc)
            yield reader
        return
    if not loc.path or loc.path.endswith("/"):
        raise InvalidArgumentError(f"{loc} names a prefix, not a manifest")
    assert loc.bucket is not None
    try:
        remote = _RemoteFile(S3Bucket(loc.bucket, client_for(loc.bucket, client)), loc.path, pinned)
    except RepositoryError as exc:
        raise _changed(loc) if _precondition_failed(exc) else exc from exc
    try:
        with _Reader(cast(BinaryIO, remote), str(loc), remote.etag) as reader:
            reader.prefetch = remote.prefetch
            yield reader
    except RepositoryError as exc:
        if _precondition_failed(exc):
            raise _changed(loc) from exc
        raise
    finally:
        remote.close()


def _precondition_failed(exc: RepositoryError) -> bool:
    return exc.code in ("PreconditionFailed", "412")


def _changed(loc: _Location) -> ConflictError:
    return ConflictError(
        f"manifest {loc} was replaced after the collection was planned: this collection "
        "reads only the version it planned with; plan again"
    )


def _expand(
    srcs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    client: Any = None,
    *,
    allow_empty: bool = False,
) -> list[_Location]:
    """Manifest files named by ``srcs``: files, directories and s3:// prefixes ending in '/'."""
    if isinstance(srcs, str | os.PathLike):
        srcs = [srcs]
    found: list[_Location] = []
    for src in srcs:
        loc = _Location.parse(src)
        if loc.is_s3 and (not loc.path or loc.path.endswith("/")):
            files = _list_s3(loc, client)
        elif not loc.is_s3 and (loc.path.endswith(("/", os.sep)) or os.path.isdir(loc.path)):
            files = _list_dir(loc)
        else:
            files = [loc]
        if not files and not allow_empty:
            # Fail closed: an empty liveset would let collection delete everything.
            raise NotExistError(f"no manifests (*.parquet) under {loc}")
        found.extend(files)
    if not found and not allow_empty:
        raise InvalidArgumentError("read_liveset needs at least one manifest")
    return found


def _expand_modified(
    srcs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], client: Any = None
) -> list[tuple[_Location, datetime]]:
    """The manifest files under ``srcs`` (folders that hold none give none), each with
    when it was last modified: S3's Last-Modified from the listing, a file's mtime."""
    if isinstance(srcs, str | os.PathLike):
        srcs = [srcs]
    found: list[tuple[_Location, datetime]] = []
    for src in srcs:
        loc = _Location.parse(src)
        if loc.is_s3:
            found.extend(_s3_manifests(loc, client))
        else:
            files = _list_dir(loc) if os.path.isdir(loc.path) else [loc]
            for file in files:
                try:
                    mtime = os.stat(file.path).st_mtime
                except FileNotFoundError:
                    raise NotExistError(f"manifest {file} does not exist") from None
                found.append((file, datetime.fromtimestamp(mtime, UTC)))
    return found


def _list_dir(loc: _Location) -> list[_Location]:
    root = Path(loc.path)
    if not root.is_dir():
        raise NotExistError(f"manifest directory {loc} does not exist")
    return [_Location(None, str(p)) for p in sorted(root.rglob("*.parquet")) if p.is_file()]


def _list_s3(loc: _Location, client: Any = None) -> list[_Location]:
    return [found for found, _ in _s3_manifests(loc, client)]


def _s3_manifests(loc: _Location, client: Any = None) -> list[tuple[_Location, datetime]]:
    """What ``loc`` names in S3, by key, each with its Last-Modified from the listing:
    every ``*.parquet`` under a folder (the bucket, or a prefix ending in '/'), or the
    one key ``loc`` is, if it exists."""
    assert loc.bucket is not None
    bucket = S3Bucket(loc.bucket, client_for(loc.bucket, client))
    folder = not loc.path or loc.path.endswith("/")
    found = [
        (_Location(loc.bucket, item.key), item.modified)
        for page in bucket.list_pages(loc.path)
        for item in page.items
        if (item.key.endswith(".parquet") if folder else item.key == loc.path)
    ]
    return sorted(found, key=lambda pair: pair[0].path)


# -- writing --------------------------------------------------------------------------


def _utc(when: datetime) -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise InvalidArgumentError(f"created_at must be a timezone-aware datetime, got {when!r}")
    return when.astimezone(UTC)


def _row(item: Any, number: int) -> ManifestRow:
    try:
        if isinstance(item, ManifestRow):
            return item
        if isinstance(item, tuple) and len(item) == 3:
            return ManifestRow(*item)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"manifest row {number}: {exc}") from exc
    raise InvalidArgumentError(
        f"manifest row {number}: expected a ManifestRow or (Digest, size, source), "
        f"got {type(item).__name__}"
    )


def _row_batches(rows: Iterable[Any]) -> Iterator[pa.RecordBatch]:
    """``rows``, each checked, as batches of BATCH_ROWS in MANIFEST_SCHEMA, in order."""
    raws: list[bytes] = []
    sizes: list[int] = []
    sources: list[str] = []

    def batch() -> pa.RecordBatch:
        digests = digest_column(b"".join(raws), len(raws))
        made = pa.record_batch(
            [digests, pa.array(sizes, pa.int64()), pa.array(sources, pa.string())],
            schema=MANIFEST_SCHEMA,
        )
        raws.clear()
        sizes.clear()
        sources.clear()
        return made

    for number, item in enumerate(rows):
        row = _row(item, number)
        raws.append(row.digest.raw)
        sizes.append(row.size)
        sources.append(row.source)
        if len(raws) == BATCH_ROWS:
            yield batch()
    if raws:
        yield batch()


def _regrouped(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """The rows of ``batches``, in order, in batches of exactly ``size`` (the last fewer)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        while batch.num_rows:
            take = min(size - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == size:
                yield joined(pending)
                pending, held = [], 0
    if held:
        yield joined(pending)


def _write_parquet(path: str, rows: Iterable[Any], metadata: dict[bytes, bytes]) -> int:
    """Write ``rows`` to ``path`` sorted by digest, in row groups of BATCH_ROWS, with the
    digest index that lets a reader skip row groups (see ``_rowgroups``); the row count.

    The sort holds at most ``RUN_ROWS`` rows in memory (see ``_sortedruns``)."""
    schema = MANIFEST_SCHEMA.with_metadata(metadata)
    groups: list[tuple[int, bytes, bytes]] = []
    # Page checksums: a flipped bit in a digest must fail the read, not change the digest.
    dictionary: Any = ["source"]  # sources repeat; digests never do
    with pq.ParquetWriter(
        path, schema, write_page_checksum=True, use_dictionary=dictionary
    ) as writer:
        for group in _regrouped(sorted_batches(_row_batches(rows)), BATCH_ROWS):
            digests = digests_of(group)
            groups.append((group.num_rows, digests[0].tobytes(), digests[-1].tobytes()))
            writer.write_batch(pa.record_batch(group.columns, schema=schema))
        index = index_metadata(groups)
        writer.add_key_value_metadata({k.decode(): v.decode() for k, v in index.items()})
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return sum(num_rows for num_rows, _, _ in groups)


def write_manifest(
    dest: str | os.PathLike[str],
    rows: Iterable[ManifestRow | tuple[Digest, int, str]],
    *,
    created_by: str = "s3repo",
    created_at: datetime | None = None,
    kind: ManifestKind = "snapshot",
    labels: Mapping[str, str] | None = None,
    client: Any = None,
) -> ManifestInfo:
    """Write a manifest of ``rows`` to a local path or ``s3://bucket/key``, atomically.

    ``rows`` streams: it is sorted by digest (at most ``RUN_ROWS`` in memory, see
    ``_sortedruns``) and written a row group at a time. ``created_at`` (default now)
    must be timezone-aware; it is stored in UTC. ``kind`` is ``"snapshot"`` or
    ``"record"`` (see the module docstring: a record of objects just stored is better
    written with :func:`s3repo_core.records.write_record`, which checks it is prompt);
    ``labels`` are stored as ``s3repo.label.<name>`` metadata. Raises InvalidArgumentError for a bad
    row (naming its number) or argument, NotExistError if the local directory or the
    bucket does not exist, and the translated S3 error if the upload fails; in every
    case nothing is left at ``dest``.

    A manifest is never written into a repository's key space: an ``s3://`` key with a
    segment other than its last that names one of the areas a repository keeps under
    its prefix (``objects``, ``uploads``, ``collections``, ``touches``, ``quarantine``:
    :data:`~s3repo_core._names.RESERVED_AREAS`), such as
    ``s3://bucket/<prefix>/objects/...``, is refused with InvalidArgumentError, whatever
    the prefix (any prefix can be a repository's), before anything is written. Whole
    segments only: ``manifests/objects-2024/live.parquet`` or a key named ``objects``
    are fine. Local paths are not S3 keys and are not checked.

    ``client`` is the boto3 client to upload with (default: the bucket's, see the module
    docstring); a local path needs none.
    """
    loc = _Location.parse(dest)
    if loc.is_s3 and (not loc.path or loc.path.endswith("/")):
        raise InvalidArgumentError(f"{loc} names a prefix; a manifest needs a key")
    check_manifest_location(loc)
    if not isinstance(created_by, str) or not created_by:
        raise InvalidArgumentError(f"created_by must be a non-empty str, got {created_by!r}")
    when = _utc(created_at if created_at is not None else datetime.now(UTC))
    if kind not in KINDS:
        raise InvalidArgumentError(f"kind must be 'snapshot' or 'record', got {kind!r}")
    labels = _check_labels(labels)
    metadata = {
        FORMAT_KEY: FORMAT_VERSION,
        CREATED_AT_KEY: when.isoformat(timespec="microseconds").encode(),
        CREATED_BY_KEY: created_by.encode(),
        KIND_KEY: kind.encode(),
    }
    metadata.update(
        (LABEL_PREFIX + name.encode(), value.encode()) for name, value in labels.items()
    )
    if loc.is_s3:
        fd, tmp = tempfile.mkstemp(prefix="s3repo-manifest-", suffix=".parquet")
    else:
        target = Path(loc.path)
        if target.is_dir():
            raise InvalidArgumentError(f"{loc} is a directory, not a manifest file")
        if not target.parent.is_dir():
            raise NotExistError(f"directory {target.parent} does not exist")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        count = _write_parquet(tmp, rows, metadata)
        if loc.is_s3:
            assert loc.bucket is not None
            bucket = S3Bucket(loc.bucket, client_for(loc.bucket, client))
            bucket.upload_file(tmp, loc.path, "application/vnd.apache.parquet")
        else:
            os.replace(tmp, loc.path)
    finally:
        _remove(tmp)
    return ManifestInfo(str(loc), count, when, created_by, kind, labels)


def _check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidArgumentError(f"labels is a mapping of str to str, got {labels!r}")
    for name, value in labels.items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise InvalidArgumentError(
                f"labels map non-empty names to text, got {name!r}: {value!r}"
            )
    return dict(labels)


def remove_manifest(location: str | os.PathLike[str], *, client: Any = None) -> None:
    """Delete the manifest at a local path or ``s3://bucket/key``: what retention does
    to a record it no longer keeps. Removing one that is gone is not an error."""
    loc = _Location.parse(location)
    if loc.is_s3:
        if not loc.path or loc.path.endswith("/"):
            raise InvalidArgumentError(f"{loc} names a prefix; a manifest needs a key")
        check_manifest_location(loc)
        assert loc.bucket is not None
        S3Bucket(loc.bucket, client_for(loc.bucket, client)).delete(loc.path)
    else:
        _remove(loc.path)


# -- reading --------------------------------------------------------------------------


def _first(mask: pa.Array[Any] | np.ndarray) -> int:
    """Index of the first True in ``mask``."""
    values = mask.to_numpy(zero_copy_only=False) if isinstance(mask, pa.Array) else mask
    return int(np.flatnonzero(values)[0])


def _buffer(col: pa.Array[Any], i: int) -> memoryview:
    """Buffer ``i`` of ``col``, typed for ``np.frombuffer``.

    A ``pa.Buffer`` exports the buffer protocol, which is all ``np.frombuffer`` needs,
    but numpy's stubs (before Python 3.12's ``collections.abc.Buffer``) accept only
    concrete types such as ``memoryview``. A cast, not a conversion: the array still
    views the Arrow buffer itself (and a missing buffer, None, fails in numpy as before).
    """
    return cast(memoryview, col.buffers()[i])


def _digest_array(col: pa.Array[Any]) -> np.ndarray:
    """A validated fixed_size_binary(32) Arrow array as a DIGEST_DTYPE array (a view)."""
    return np.frombuffer(
        _buffer(col, 1), dtype=DIGEST_DTYPE, count=len(col), offset=col.offset * 32
    )


def _values(col: pa.Array[Any], width: int) -> np.ndarray:
    """The bytes of a (large_)binary or string array whose values are all ``width`` long."""
    large = pa.types.is_large_binary(col.type) or pa.types.is_large_string(col.type)
    offset_type = np.int64 if large else np.int32
    offsets = np.frombuffer(
        _buffer(col, 1),
        dtype=offset_type,
        count=len(col) + 1,
        offset=col.offset * np.dtype(offset_type).itemsize,
    )
    start = int(offsets[0])
    data = np.frombuffer(_buffer(col, 2), dtype=np.uint8) if len(col) else np.empty(0, np.uint8)
    return data[start : start + width * len(col)].reshape(len(col), width)


class _Reader:
    """Open, check and stream one local manifest file; ``label`` names it in errors."""

    def __init__(self, path: str | BinaryIO, label: str, version: str | None = None) -> None:
        self.label = label
        #: Fetch a byte range ahead of the reads of one row group (see ``_RemoteFile``).
        self.prefetch: Callable[[int, int], None] | None = None
        self.version = version
        if not isinstance(path, str):  # an open file (see _opened)
            self._file = path
            self._open()
            return
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError as exc:
            raise NotExistError(f"manifest {label} does not exist") from exc
        except IsADirectoryError as exc:
            raise InvalidArgumentError(f"manifest {label} is a directory") from exc
        except OSError as exc:
            raise RepositoryError(f"cannot open manifest {label}: {exc}") from exc
        try:
            stat = os.fstat(self._file.fileno())
            self.version = f"{stat.st_size}-{stat.st_mtime_ns}"
            self._open()
        except BaseException:
            self._file.close()
            raise

    def _open(self) -> None:
        try:
            self._parquet = pq.ParquetFile(self._file, page_checksum_verification=True)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidArgumentError(
                f"manifest {self.label} is not a readable Parquet file: {exc}"
            ) from exc
        meta = self._parquet.metadata.metadata or {}
        version = meta.get(FORMAT_KEY)
        if version is None:
            raise InvalidArgumentError(
                f"{self.label} is not an s3repo manifest: its Parquet metadata has no "
                f"{FORMAT_KEY.decode()!r} key"
            )
        if version != FORMAT_VERSION:
            raise InvalidArgumentError(
                f"manifest {self.label} has unsupported format version {version!r}"
            )
        #: The row groups by digest range if the file is sorted, else None.
        self.groups: list[Group] | None = read_index(self._parquet.metadata, self.label)
        try:
            self.created_at = _utc(datetime.fromisoformat(meta[CREATED_AT_KEY].decode()))
            self.created_by = meta[CREATED_BY_KEY].decode()
            self.labels = {
                name[len(LABEL_PREFIX) :].decode(): value.decode()
                for name, value in meta.items()
                if name.startswith(LABEL_PREFIX)
            }
        except (KeyError, UnicodeDecodeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"manifest {self.label} lacks a valid {CREATED_AT_KEY.decode()} "
                f"(ISO-8601 with time zone) or {CREATED_BY_KEY.decode()}: {exc}"
            ) from exc
        kind = meta.get(KIND_KEY, b"snapshot").decode(errors="replace")
        if kind not in KINDS:
            # Fail closed: a kind this version does not know may mean anything.
            raise InvalidArgumentError(
                f"manifest {self.label} is of kind {kind!r}; this s3repo knows "
                "'snapshot' and 'record'"
            )
        self.kind: ManifestKind = kind
        self.num_rows = int(self._parquet.metadata.num_rows)
        schema = self._parquet.schema_arrow
        for name in ("digest", "size"):
            if name not in schema.names:
                raise InvalidArgumentError(f"manifest {self.label} has no {name!r} column")
        self._columns = [n for n in ("digest", "size", "source") if n in schema.names]
        for name in self._columns:
            if schema.names.count(name) > 1:
                raise InvalidArgumentError(f"manifest {self.label} has two {name!r} columns")
        digest_type = _plain(schema.field("digest").type)
        if not (
            digest_type == pa.binary(32)
            or pa.types.is_binary(digest_type)
            or pa.types.is_large_binary(digest_type)
            or pa.types.is_string(digest_type)
            or pa.types.is_large_string(digest_type)
        ):
            raise InvalidArgumentError(
                f"manifest {self.label}: the digest column is {digest_type}; expected "
                "fixed_size_binary(32), binary or 'sha256:<hex>' strings"
            )
        if not pa.types.is_integer(_plain(schema.field("size").type)):
            raise InvalidArgumentError(
                f"manifest {self.label}: the size column is {schema.field('size').type}; "
                "expected integers"
            )
        if "source" in schema.names and not (
            pa.types.is_string(_plain(schema.field("source").type))
            or pa.types.is_large_string(_plain(schema.field("source").type))
        ):
            raise InvalidArgumentError(
                f"manifest {self.label}: the source column is {schema.field('source').type}; "
                "expected strings"
            )

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Validated batches in MANIFEST_SCHEMA; InvalidArgumentError names a bad row."""
        row = 0
        batches = self._parquet.iter_batches(batch_size=BATCH_ROWS, columns=self._columns)
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as exc:
                raise InvalidArgumentError(
                    f"manifest {self.label} is corrupt after row {row}: {exc}"
                ) from exc
            if batch is None:
                break
            yield self._check(batch, row)
            row += batch.num_rows
        if row != self.num_rows:
            raise InvalidArgumentError(
                f"manifest {self.label} holds {row} rows, its footer says {self.num_rows}"
            )

    def select(self, spans: Sequence[tuple[int, int]] | None) -> list[int]:
        """The row groups that may hold digests of ``spans`` (None: every group)."""
        if spans is None or self.groups is None:
            return list(range(self._parquet.metadata.num_row_groups))
        return [group.number for group in self.groups if group.meets(spans)]

    def group_rows(self, numbers: Iterable[int]) -> int:
        """Rows in the row groups ``numbers``, by the footer."""
        return sum(self._parquet.metadata.row_group(n).num_rows for n in numbers)

    def digests(
        self, numbers: Iterable[int], spans: Sequence[tuple[int, int]] | None
    ) -> Iterator[np.ndarray]:
        """The digests of row groups ``numbers`` that lie in ``spans`` (None: all), one
        group at a time (a :data:`DIGEST_DTYPE` array each), every row checked; in a
        sorted file, each group is checked against the index too (see ``_rowgroups``)."""
        metadata = self._parquet.metadata
        sizes = [metadata.row_group(n).num_rows for n in range(metadata.num_row_groups)]
        first_rows = np.concatenate([[0], np.cumsum(sizes)])
        columns = [name for name in ("digest", "size") if name in self._columns]
        for number in numbers:
            group = None if self.groups is None else self.groups[number]
            if group is not None and self.prefetch is not None:
                self.prefetch(group.start, group.end)
            row = int(first_rows[number])
            try:
                table = self._parquet.read_row_group(number, columns=columns)
            except (pa.ArrowException, OSError) as exc:
                raise InvalidArgumentError(
                    f"manifest {self.label} is corrupt in row group {number} (rows from "
                    f"{row}): {exc}"
                ) from exc
            expected = metadata.row_group(number).num_rows
            if table.num_rows != expected:
                raise self._bad(
                    row,
                    f"row group {number} holds {table.num_rows} rows, its footer says {expected}",
                )
            found: dict[str, pa.Array[Any]] = {
                name: _decoded(table.column(name).combine_chunks()) for name in columns
            }
            digests = _digest_array(self._checked(found, row)[0])
            if (
                group is not None
                and len(digests)
                and not (
                    digests[0].tobytes() == group.first
                    and digests[-1].tobytes() == group.last
                    and is_sorted(digests)
                )
            ):
                raise self._bad(row, f"row group {number} does not hold what the digest index says")
            yield digests if spans is None else digests[in_spans(digests, spans)]

    def _bad(self, row: int, what: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"manifest {self.label}: row {row}: {what}")

    def _check(self, batch: pa.RecordBatch, row: int) -> pa.RecordBatch:
        n = batch.num_rows
        columns: dict[str, pa.Array[Any]] = {
            name: _decoded(batch.column(name)) for name in self._columns
        }
        digests, sizes = self._checked(columns, row)
        source = columns.get("source")
        if source is None:
            source = pa.array([""] * n, pa.string())
        elif source.type != pa.string():
            source = source.cast(pa.string())
        return pa.record_batch([digests, sizes, source], schema=MANIFEST_SCHEMA)

    def _checked(
        self, columns: Mapping[str, pa.Array[Any]], row: int
    ) -> tuple[pa.Array[Any], pa.Array[Any]]:
        """The digest and size columns of ``columns`` (rows from ``row``), checked: no
        null in any column, digests as ``fixed_size_binary(32)``, sizes as int64."""
        for name, col in columns.items():
            if col.null_count:
                raise self._bad(row + _first(col.is_null()), f"{name} is null")
        return self._check_digests(columns["digest"], row), self._check_sizes(columns["size"], row)

    def _check_digests(self, col: pa.Array[Any], row: int) -> pa.Array[Any]:
        if col.type == pa.binary(32):
            return col
        if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
            binary = cast("pa.BinaryArray | pa.LargeBinaryArray", col)
            lengths = pc.binary_length(binary).to_numpy()
            if (lengths != 32).any():
                i = _first(lengths != 32)
                raise self._bad(row + i, f"digest is {lengths[i]} bytes, expected 32")
            raw = _values(col, 32)
        else:
            ok = pc.match_substring_regex(col, _DIGEST_TEXT).to_numpy(zero_copy_only=False)
            if not ok.all():
                i = _first(~ok)
                raise self._bad(
                    row + i,
                    f"invalid digest {col[i].as_py()!r:.100}: expected 'sha256:' followed "
                    "by 64 lowercase hex digits",
                )
            nibbles = _HEX_VALUES[_values(col, _DIGEST_TEXT_LENGTH)[:, len("sha256:") :]]
            raw = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
        return digest_column(np.ascontiguousarray(raw).tobytes(), len(col))

    def _check_sizes(self, col: pa.Array[Any], row: int) -> pa.Array[Any]:
        values = col.to_numpy()
        if values.dtype.kind == "u":
            bad = values > _INT64_MAX
            what = "larger than 2**63 - 1"
        else:
            bad = values < 0
            what = "negative"
        if bad.any():
            i = _first(bad)
            raise self._bad(row + i, f"size {int(values[i])} is {what}")
        return pa.array(values.astype(np.int64), pa.int64())


def _info(reader: _Reader) -> ManifestInfo:
    """What ``reader`` has read the footer of."""
    return ManifestInfo(
        reader.label,
        reader.num_rows,
        reader.created_at,
        reader.created_by,
        reader.kind,
        reader.labels,
        reader.version,
    )


def _plain(t: pa.DataType) -> pa.DataType:
    """A dictionary type's value type; any other type unchanged."""
    return t.value_type if pa.types.is_dictionary(t) else t


def _decoded(col: pa.Array[Any]) -> pa.Array[Any]:
    if pa.types.is_dictionary(col.type):
        return cast("pa.DictionaryArray[Any, Any]", col).dictionary_decode()
    return col


def read_manifest(src: str | os.PathLike[str], *, client: Any = None) -> Manifest:
    """Read and fully validate the manifest at a local path or ``s3://bucket/key``.

    ``client`` is the boto3 client to download with (default: the bucket's, see the
    module docstring). Raises NotExistError if the file or key is missing,
    InvalidArgumentError if it is not Parquet, not an s3repo manifest, or has a bad row
    (the message names the row, numbered from 0); S3 errors are translated.
    """
    loc = _Location.parse(src)
    with _local_copy(loc, client=client) as path, _Reader(path, str(loc)) as reader:
        table = pa.Table.from_batches(list(reader.batches()), schema=MANIFEST_SCHEMA)
        return Manifest(
            str(loc), reader.created_at, reader.created_by, table, reader.kind, reader.labels
        )


def read_manifest_infos(
    srcs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    client: Any = None,
) -> list[ManifestInfo]:
    """What each manifest under ``srcs`` is (kind, labels, creation), from its footer,
    without validating its rows: what retention decides on. Locations as
    :func:`read_liveset_with_info` takes them; a directory or prefix that holds no
    manifest gives none here (nothing to retire), a missing file NotExistError."""
    return _footers(_expand(srcs, client, allow_empty=True), client)


#: Footers read at a time: a retention or a plan reads one per manifest, and many
#: small records wait on latency, not bytes.
FOOTER_READS = 16


def _footers(locations: list[_Location], client: Any) -> list[ManifestInfo]:
    """The info of each manifest at ``locations``, in order, FOOTER_READS at a time."""

    def footer(loc: _Location) -> ManifestInfo:
        with _opened(loc, client) as reader:
            return _info(reader)

    if len(locations) <= 1:
        return [footer(loc) for loc in locations]
    return list(in_order(footer, locations, FOOTER_READS, "s3repo-footers"))


def manifests_naming(
    digest: Digest | str,
    srcs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    client: Any = None,
) -> list[ManifestInfo]:
    """Every manifest under ``srcs`` that names ``digest``: why an object is live.

    Each file is read in full and validated, as a collection would read it."""
    wanted = Digest.parse(digest) if isinstance(digest, str) else digest
    if not isinstance(wanted, Digest):
        raise InvalidArgumentError(f"digest is a Digest or 'sha256:<hex>', got {digest!r}")
    raw = np.frombuffer(wanted.raw, dtype=DIGEST_DTYPE)
    naming = []
    for loc in _expand(srcs, client, allow_empty=True):
        with _local_copy(loc, client=client) as path, _Reader(path, str(loc)) as reader:
            if any((_digest_array(batch.column(0)) == raw).any() for batch in reader.batches()):
                naming.append(_info(reader))
    return naming


def manifest_rows(
    srcs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    client: Any = None,
) -> Iterator[ManifestRow]:
    """Every row of every manifest under ``srcs`` (expanded as :func:`read_liveset`
    expands them), one file read and validated at a time: what ``verify`` checks of a
    liveset, sizes included. NotExistError if a location is missing or holds none."""
    for loc in _expand(srcs, client):
        yield from read_manifest(str(loc), client=client)
