"""Rows sorted by digest in bounded memory: sorted runs, spilled to disk, then merged.

Manifests are written sorted by digest so that a collection's shard step reads only
the row groups of its digest range (see ``_rowgroups``); a manifest is written from a
stream of any length, so it cannot be sorted in memory in one piece. Up to
``run_rows`` rows are sorted at a time; if the input is longer, each sorted run goes to
a temporary Parquet file and the runs are merged. The merge is the same one a liveset
is read with from many sorted manifests (:func:`merge_sorted`): vectorised, a block at
a time, never a Python object per row.

Every batch here has a ``digest`` column of ``fixed_size_binary(32)``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .liveset import DIGEST_DTYPE, digest_order

__all__ = ["RUN_ROWS", "digest_column", "digests_of", "joined", "merge_sorted", "sorted_batches"]

#: Rows sorted in memory at a time while a manifest is written (about 40 MiB of
#: digests and sizes, plus the sources).
RUN_ROWS = 1 << 20
#: Rows read from each spilled run at a time while runs are merged.
_MERGE_ROWS = 16384
_BYTES = np.dtype("S32")  # compares and searches as memcmp does: byte order


def digests_of(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    """The ``digest`` column of ``batch`` as a :data:`DIGEST_DTYPE` array (no copy for
    a batch; a table's chunks are joined)."""
    column: Any = batch.column("digest")
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    buffer = cast(memoryview, column.buffers()[1])
    return np.frombuffer(buffer, dtype=DIGEST_DTYPE, count=len(column), offset=column.offset * 32)


def digest_column(raw: Any, count: int) -> pa.Array[Any]:
    """``count`` digests of 32 raw bytes each, from one buffer (``bytes`` or a contiguous
    array): a ``fixed_size_binary(32)`` column, the inverse of :func:`digests_of`."""
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), count, [None, pa.py_buffer(raw)])


def joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One batch of the rows of ``batches`` (at least one), in order, each column in one
    piece: what the sort, the merge and the writer's row groups are made of."""
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def _sort(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch.take(pa.array(digest_order(digests_of(batch))))


def merge_sorted(runs: Iterable[Iterator[pa.RecordBatch]]) -> Iterator[pa.RecordBatch]:
    """One stream, in digest order, of several streams of batches each in digest order.

    Each round takes, from every stream's current batch, the rows up to the smallest
    of their last digests (nothing later in any stream can come before those), sorts
    that block and yields it: memory is one batch per stream plus the block.
    """
    heads: list[tuple[pa.RecordBatch, Iterator[pa.RecordBatch]]] = []
    for run in runs:
        head = _next_nonempty(run)
        if head is not None:
            heads.append((head, run))
    while heads:
        if len(heads) == 1:
            head, run = heads.pop()
            yield head
            yield from (batch for batch in run if batch.num_rows)
            return
        bound = min(digests_of(head)[-1:].view(_BYTES)[0] for head, _ in heads)
        pieces: list[pa.RecordBatch] = []
        kept: list[tuple[pa.RecordBatch, Iterator[pa.RecordBatch]]] = []
        for head, run in heads:
            cut = int(np.searchsorted(digests_of(head).view(_BYTES), bound, side="right"))
            if cut:
                pieces.append(head.slice(0, cut))
            rest: pa.RecordBatch | None = head.slice(cut) if cut < head.num_rows else None
            if rest is None:
                rest = _next_nonempty(run)
            if rest is not None:
                kept.append((rest, run))
        heads = kept
        yield _sort(joined(pieces))


def _next_nonempty(run: Iterator[pa.RecordBatch]) -> pa.RecordBatch | None:
    for batch in run:
        if batch.num_rows:
            return batch
    return None


def _spill(batches: list[pa.RecordBatch], directory: str) -> str:
    """``batches`` sorted into a new file in ``directory``: one run of the merge."""
    fd, path = tempfile.mkstemp(prefix="run-", suffix=".parquet", dir=directory)
    os.close(fd)
    run = _sort(joined(batches))
    pq.write_table(pa.Table.from_batches([run]), path, compression="none", use_dictionary=False)
    return path


def _read_run(path: str) -> Iterator[pa.RecordBatch]:
    with pq.ParquetFile(path) as run:
        yield from run.iter_batches(batch_size=_MERGE_ROWS)
    os.remove(path)  # read through: its space is free before the merge ends


def sorted_batches(
    batches: Iterable[pa.RecordBatch], *, run_rows: int | None = None
) -> Iterator[pa.RecordBatch]:
    """The rows of ``batches`` in digest order (equal digests in their order of arrival).

    At most ``run_rows`` rows (default :data:`RUN_ROWS`) are held sorted in memory;
    beyond that, runs are spilled to a temporary directory, removed when the stream
    ends or is closed."""
    run_rows = RUN_ROWS if run_rows is None else run_rows
    pending: list[pa.RecordBatch] = []
    held = 0
    with tempfile.TemporaryDirectory(prefix="s3repo-sort-") as directory:
        spilled: list[str] = []
        for batch in batches:
            pending.append(batch)
            held += batch.num_rows
            if held >= run_rows:
                spilled.append(_spill(pending, directory))
                pending, held = [], 0
        if not spilled:
            if held:
                yield _sort(joined(pending))
            return
        if held:
            spilled.append(_spill(pending, directory))
        yield from merge_sorted(_read_run(path) for path in spilled)
