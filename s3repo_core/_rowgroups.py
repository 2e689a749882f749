"""The digest index of a sorted manifest: which row groups hold which digests.

A manifest s3repo writes is sorted by digest, in row groups of ``BATCH_ROWS``, and
Parquet keeps each row group's smallest and largest digest in the footer. A
collection's shard step reads only the row groups whose range meets its shard's, so
that each of 256 steps reads about 1/256 of the liveset instead of all of it.

Skipping a row group is a decision to trust the footer, and a footer has no checksum
(the data pages do: see ``write_page_checksum``). A flipped bit in a row group's
bounds would hide its digests from the one shard that needs them, and that shard
would delete live objects. So the writer also stores, as metadata, a CRC-32 of every
row group's row count and bounds (``s3repo.index``): a reader uses the bounds only if
they match it, and fails closed otherwise. Of each row group it does read, it checks
that the digests are sorted and lie within the bounds, and that the groups follow one
another in order. A manifest without the index (written by another tool, or by an
s3repo before 0.3) is read whole, and filtered.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow.parquet as pq

from ._errors import InvalidArgumentError

__all__ = ["INDEX_KEY", "SORTED_KEY", "Group", "index_metadata", "read_index"]

#: Present (as ``digest``) on a manifest whose rows are sorted by digest.
SORTED_KEY = b"s3repo.sorted"
#: ``crc32:<8 hex>`` over each row group's row count and first and last digest.
INDEX_KEY = b"s3repo.index"
_GROUP = struct.Struct(">Q32s32s")
_FIRST_WORD = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class Group:
    """One row group of a sorted manifest, as its footer describes it."""

    number: int
    num_rows: int
    #: Its smallest and largest digest (32 raw bytes each).
    first: bytes
    last: bytes
    #: Where its column chunks lie in the file: ``[start, end)``.
    start: int
    end: int

    def meets(self, spans: Sequence[tuple[int, int]]) -> bool:
        """Whether any digest of ``spans`` (first-word ranges) could be in this group."""
        low = _FIRST_WORD.unpack_from(self.first)[0]
        high = _FIRST_WORD.unpack_from(self.last)[0]
        return any(start <= high and low < stop for start, stop in spans)


def index_metadata(groups: Sequence[tuple[int, bytes, bytes]]) -> dict[bytes, bytes]:
    """The metadata that marks a manifest sorted, for its row groups as
    ``(num_rows, first digest, last digest)``, in order."""
    crc = 0
    for num_rows, first, last in groups:
        crc = zlib.crc32(_GROUP.pack(num_rows, first, last), crc)
    return {SORTED_KEY: b"digest", INDEX_KEY: f"crc32:{crc:08x}".encode()}


def read_index(metadata: pq.FileMetaData, label: str) -> list[Group] | None:
    """The row groups of a sorted manifest, checked against its index; None for a
    manifest that is not marked sorted. InvalidArgumentError if the footer and the
    index disagree: the footer cannot be trusted to skip anything."""
    kv = metadata.metadata or {}
    marked = kv.get(SORTED_KEY)
    if marked is None:
        return None
    if marked != b"digest":
        raise InvalidArgumentError(f"manifest {label} is sorted by {marked!r}, not by digest")
    names = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    if "digest" not in names:
        raise InvalidArgumentError(f"manifest {label} has no 'digest' column")
    column = names.index("digest")
    groups: list[Group] = []
    described: list[tuple[int, bytes, bytes]] = []
    for number in range(metadata.num_row_groups):
        group = metadata.row_group(number)
        stats = group.column(column).statistics
        first = stats.min if stats is not None and stats.has_min_max else None
        last = stats.max if stats is not None and stats.has_min_max else None
        if not (isinstance(first, bytes) and isinstance(last, bytes)) or not (
            len(first) == len(last) == 32 and first <= last
        ):
            raise InvalidArgumentError(
                f"manifest {label}: row group {number} has no valid digest bounds"
            )
        if groups and first < groups[-1].last:
            raise InvalidArgumentError(
                f"manifest {label}: row group {number} begins before the one before ends"
            )
        chunks = [group.column(i) for i in range(group.num_columns)]
        starts = [_chunk_start(chunk) for chunk in chunks]
        end = max(s + c.total_compressed_size for s, c in zip(starts, chunks, strict=True))
        groups.append(Group(number, group.num_rows, first, last, min(starts), end))
        described.append((group.num_rows, first, last))
    if index_metadata(described)[INDEX_KEY] != kv.get(INDEX_KEY):
        raise InvalidArgumentError(
            f"manifest {label}: its row groups do not match its digest index (a damaged "
            "footer?); it cannot be read in part"
        )
    return groups


def _chunk_start(chunk: pq.ColumnChunkMetaData) -> int:
    """Where a column chunk begins: at its dictionary page if it has one."""
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else None
    return int(chunk.data_page_offset if start is None else start)
