"""Livesets read from manifests: the whole liveset, or one shard's slice of it.

Reading is split in two so that a collection can run the parts in different processes:

1. :func:`read_footers` reads each manifest's footer (one suffix GET in S3), checks it
   (format, columns, digest index) and notes the version it read: what a collection's
   plan step does, in memory that does not grow with the liveset;
2. :func:`read_pinned_liveset` reads, of exactly those versions, the row groups that
   can hold digests of the shards asked for (all of them for ``shards=None``), checks
   every row it reads, and builds the liveset: what each shard step does. A manifest
   replaced since its footer was read is a ConflictError, never other rows.

Memory of an exact liveset: sorted manifests stream in digest order (``merge_sorted``)
straight into the liveset's array, so the peak is its 32 bytes per live digest plus a
row group per manifest being merged. Manifests that give at most one row group's worth
of rows are read at once and pooled (sorted together: 80 bytes per pooled row at the
peak); a manifest without a digest index (another tool's, an older s3repo's) is read
whole and sorted likewise. A Bloom liveset needs no order: its filter plus a row group.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa

from ._errors import InvalidArgumentError
from ._shards import check_shards, first_word_span
from ._sortedruns import digest_column, digests_of, merge_sorted
from .liveset import DIGEST_DTYPE, BloomLiveset, ExactLiveset, digest_order
from .manifest import (
    BATCH_ROWS,
    LivesetInfo,
    ManifestInfo,
    _expand,
    _footers,
    _Location,
    _opened,
    _Reader,
)

__all__ = [
    "SliceRead",
    "read_footers",
    "read_liveset",
    "read_liveset_with_info",
    "read_pinned_liveset",
]

Spans = Sequence[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class SliceRead:
    """What reading a liveset (or a shard's slice of one) read."""

    #: The shards the slice is of; None for the whole liveset.
    shards: tuple[str, ...] | None
    manifests: int
    #: Row groups read, and in all the manifests.
    row_groups_read: int
    row_groups: int
    #: Rows read (before those outside the shards were dropped), and in the liveset.
    rows_read: int
    digests: int

    def summary(self) -> str:
        what = "the whole liveset" if self.shards is None else f"shards {', '.join(self.shards)}"
        return (
            f"{what}: {self.digests} digests from {self.rows_read} rows in "
            f"{self.row_groups_read} of {self.row_groups} row groups of {self.manifests} manifests"
        )


def read_footers(
    srcs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    records: Iterable[str | os.PathLike[str]] = (),
    client: object = None,
) -> LivesetInfo:
    """What the manifests under ``srcs`` (and ``records``, which may hold none) are, from
    their footers, each checked and pinned to the version read; see
    :func:`read_liveset_with_info` for the locations and the errors."""
    if isinstance(records, str | os.PathLike):
        records = [records]
    locations = _expand(srcs, client) + _expand(records, client, allow_empty=True)
    read = _footers(locations, client)
    return LivesetInfo(
        manifests=tuple(str(loc) for loc in locations),
        num_rows=sum(info.num_rows for info in read),
        oldest_created_at=min(info.created_at for info in read),
        newest_created_at=max(info.created_at for info in read),
        per_manifest=tuple(read),
    )


def _spans(shards: Sequence[str] | None) -> list[tuple[int, int]] | None:
    if shards is None:
        return None
    if isinstance(shards, str):
        raise InvalidArgumentError(f"shards is a list of shard names: give [{shards!r}]")
    return [first_word_span(shard) for shard in check_shards(list(shards))]


def _batch(digests: np.ndarray) -> pa.RecordBatch:
    column = digest_column(np.ascontiguousarray(digests).data, len(digests))
    return pa.record_batch([column], names=["digest"])


class _Counts:
    def __init__(self) -> None:
        self.groups_read = self.groups = self.rows = 0

    def chose(self, reader: _Reader, numbers: list[int]) -> int:
        rows = reader.group_rows(numbers)
        self.groups_read += len(numbers)
        self.groups += len(reader.select(None))
        self.rows += rows
        return rows


def _sorted_stream(
    info: ManifestInfo, numbers: list[int], spans: Spans | None, client: object
) -> Iterator[pa.RecordBatch]:
    """The digests of ``numbers`` row groups of the manifest, in digest order."""
    with _opened(_Location.parse(info.location), client, info.version) as reader:
        if reader.groups is not None:
            for digests in reader.digests(numbers, spans):
                yield _batch(digests)
            return
        whole = np.concatenate([np.empty(0, DIGEST_DTYPE), *reader.digests(numbers, spans)])
    yield _batch(whole[digest_order(whole)])


def read_pinned_liveset(
    manifests: Sequence[ManifestInfo],
    *,
    shards: Sequence[str] | None = None,
    kind: Literal["exact", "bloom"] = "exact",
    fp_rate: float = 0.01,
    client: object = None,
) -> tuple[ExactLiveset | BloomLiveset, SliceRead]:
    """The liveset of ``manifests`` (as :func:`read_footers` described them, each read at
    the version it saw), or of its digests in ``shards`` only (digest prefixes; 'other'
    and 'uploads' hold none), and what was read for it.

    Fails closed: a manifest missing or replaced since (ConflictError), or a bad row in
    any row group read, raises, and nothing is returned."""
    if kind not in ("exact", "bloom"):
        raise InvalidArgumentError(f"kind must be 'exact' or 'bloom', got {kind!r}")
    spans = _spans(shards)
    counts = _Counts()
    if kind == "bloom":
        bloom = BloomLiveset(_expected_rows(manifests, spans), fp_rate)
        for info in manifests:
            with _opened(_Location.parse(info.location), client, info.version) as reader:
                numbers = reader.select(spans)
                counts.chose(reader, numbers)
                for digests in reader.digests(numbers, spans):
                    bloom.add_many(digests)
        live: ExactLiveset | BloomLiveset = bloom
        size = bloom.count
    else:
        pool: list[np.ndarray] = []
        large: list[tuple[ManifestInfo, list[int]]] = []
        capacity = 0
        for info in manifests:
            with _opened(_Location.parse(info.location), client, info.version) as reader:
                numbers = reader.select(spans)
                rows = counts.chose(reader, numbers)
                capacity += rows
                if rows <= BATCH_ROWS:
                    pool.extend(reader.digests(numbers, spans))
                else:
                    large.append((info, numbers))
        streams: list[Iterator[pa.RecordBatch]] = [
            _sorted_stream(info, numbers, spans, client) for info, numbers in large
        ]
        if pool:
            pooled = np.concatenate(pool)
            del pool
            streams.append(iter([_batch(pooled[digest_order(pooled)])]))
            del pooled
        exact = ExactLiveset.from_sorted_blocks(
            (digests_of(batch) for batch in merge_sorted(streams)), capacity
        )
        live, size = exact, len(exact)
    return live, SliceRead(
        shards=None if shards is None else tuple(shards),
        manifests=len(manifests),
        row_groups_read=counts.groups_read,
        row_groups=counts.groups,
        rows_read=counts.rows,
        digests=size,
    )


def _expected_rows(manifests: Sequence[ManifestInfo], spans: Spans | None) -> int:
    """About how many rows of ``manifests`` lie in ``spans``: digests are uniform, so
    their share of the digest space, with 5% to spare. A Bloom filter sized for fewer
    than it holds has more false positives, never a false negative."""
    rows = sum(info.num_rows for info in manifests)
    if spans is None:
        return rows
    share = sum(max(0, stop - start) for start, stop in spans) / 2**64
    return min(rows, math.ceil(rows * share * 1.05) + 1024)


def read_liveset_with_info(
    srcs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    kind: Literal["exact", "bloom"] = "exact",
    fp_rate: float = 0.01,
    records: Iterable[str | os.PathLike[str]] = (),
    client: object = None,
) -> tuple[ExactLiveset | BloomLiveset, LivesetInfo]:
    """The union of the manifests ``srcs`` as a liveset, and what it was read from.

    ``srcs`` is one or many of: a manifest path, an ``s3://bucket/key``, a local
    directory or an ``s3://bucket/prefix/`` (ending in '/'), meaning every ``*.parquet``
    under it. Fails closed: if any manifest is missing, unreadable or has a bad row, or
    a directory or prefix holds none, this raises (NotExistError, InvalidArgumentError,
    or a translated S3 error) and returns nothing. ``kind="bloom"`` sizes the filter
    from the row counts in the files' footers, for ``fp_rate``. ``records`` are more
    locations, read the same way, that may hold no manifest at all (where records are
    written: before the first, there are none). ``client`` is the boto3 client for
    every ``s3://`` location (default: each bucket's, see ``manifest``).
    """
    if kind not in ("exact", "bloom"):
        raise InvalidArgumentError(f"kind must be 'exact' or 'bloom', got {kind!r}")
    if kind == "bloom":
        BloomLiveset(0, fp_rate)  # validates fp_rate before anything is read
    info = read_footers(srcs, records=records, client=client)
    live, _ = read_pinned_liveset(info.per_manifest, kind=kind, fp_rate=fp_rate, client=client)
    return live, info


def read_liveset(
    srcs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    kind: Literal["exact", "bloom"] = "exact",
    fp_rate: float = 0.01,
    client: object = None,
) -> ExactLiveset | BloomLiveset:
    """The union of the manifests ``srcs`` as a liveset; see :func:`read_liveset_with_info`."""
    return read_liveset_with_info(srcs, kind=kind, fp_rate=fp_rate, client=client)[0]
