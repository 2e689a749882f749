"""Livesets: the set of digests garbage collection must keep.

A liveset is anything that answers ``digest in liveset`` (the :class:`Liveset`
protocol, one method, as in the seed). Collection asks about millions of digests, so a
liveset may also answer many at once (:class:`BatchLiveset`, ``contains_many``); the
module function :func:`contains_many` uses that when present and falls back to ``in``.

Batch representation: a 1-D numpy array of dtype ``V32`` (:data:`DIGEST_DTYPE`), one
element per digest holding its 32 raw bytes. Unlike ``S32``, a void dtype never strips
trailing NUL bytes, and it views for free as ``(n, 32)`` uint8 or ``(n, 4)`` ``>u8``.
Build one with :func:`digests_to_array`.

Two implementations:

- :class:`ExactLiveset`: the digests themselves, sorted, 32 bytes each, no Python
  object per digest; answers exactly.
- :class:`BloomLiveset`: a Bloom filter, about 1.2 bytes per digest at 1% false
  positives. A false positive only keeps some garbage a while longer; a false
  negative would delete live data, so there are none.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ._digest import Digest
from ._errors import InvalidArgumentError

__all__ = [
    "DIGEST_DTYPE",
    "BatchLiveset",
    "BloomLiveset",
    "ExactLiveset",
    "Liveset",
    "contains_many",
    "digest_order",
    "digests_to_array",
    "in_spans",
    "is_sorted",
]

#: One digest per element: its 32 raw bytes (trailing NULs are kept, unlike ``S32``).
DIGEST_DTYPE = np.dtype("V32")
_DIGEST_SIZE = 32
_WORDS = np.dtype(">u8")  # a digest is four big-endian 64-bit words
_CHUNK = 65536


@runtime_checkable
class Liveset(Protocol):
    """What collection keeps: anything that answers ``digest in liveset``."""

    def __contains__(self, digest: Digest) -> bool: ...


@runtime_checkable
class BatchLiveset(Liveset, Protocol):
    """A liveset that also answers for many digests at once, which collection prefers."""

    def contains_many(self, raw: np.ndarray) -> np.ndarray:
        """A bool array: for each digest of ``raw`` (a :data:`DIGEST_DTYPE` array), in?"""
        ...


def _raw_of(item: Any, position: int) -> bytes:
    if isinstance(item, Digest):
        return item.raw
    if isinstance(item, bytes | bytearray | memoryview):
        raw = bytes(item)
        if len(raw) == _DIGEST_SIZE:
            return raw
        raise InvalidArgumentError(
            f"digest #{position}: raw digests are 32 bytes, got {len(raw)} bytes"
        )
    raise InvalidArgumentError(
        f"digest #{position}: expected a Digest or 32 raw bytes, got {type(item).__name__}"
    )


def _chunks(digests: Iterable[Digest | bytes]) -> Iterator[np.ndarray]:
    """The digests as DIGEST_DTYPE arrays of at most _CHUNK elements each."""
    batch: list[bytes] = []
    for position, item in enumerate(digests):
        batch.append(_raw_of(item, position))
        if len(batch) == _CHUNK:
            yield np.frombuffer(b"".join(batch), dtype=DIGEST_DTYPE)
            batch = []
    if batch:
        yield np.frombuffer(b"".join(batch), dtype=DIGEST_DTYPE)


def digests_to_array(digests: Iterable[Digest | bytes]) -> np.ndarray:
    """The batch form of ``digests`` (Digests or 32-byte raw values), in their order.

    Built in chunks, so a long iterator never becomes a list of Python objects.
    """
    parts = list(_chunks(digests))
    if not parts:
        return np.empty(0, dtype=DIGEST_DTYPE)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _as_digest_array(raw: Any) -> np.ndarray:
    """``raw`` as a 1-D contiguous DIGEST_DTYPE array; an (n, 32) uint8 array is accepted."""
    arr = np.asarray(raw)
    if arr.dtype == np.uint8 and arr.ndim == 2 and arr.shape[1] == _DIGEST_SIZE:
        return np.ascontiguousarray(arr).view(DIGEST_DTYPE).reshape(-1)
    if arr.dtype != DIGEST_DTYPE or arr.ndim != 1:
        raise InvalidArgumentError(
            f"expected a 1-D array of dtype V32 (see digests_to_array), got "
            f"dtype {arr.dtype} with shape {arr.shape}"
        )
    return np.ascontiguousarray(arr)


def digest_order(raw: np.ndarray) -> np.ndarray:
    """The indices that sort ``raw`` (a :data:`DIGEST_DTYPE` array) by digest, stably.

    Sorted by the first 64-bit word alone (fast), unless two digests share it."""
    return _word_order(_as_digest_array(raw).view(_WORDS).reshape(-1, 4).T)


def _word_order(words: np.ndarray) -> np.ndarray:
    """The stable order of the columns of ``words`` (4, n: four 64-bit words each),
    lexicographically: by the first word alone, unless two columns share it."""
    first = np.asarray(words[0], dtype=np.uint64)
    order = np.argsort(first, kind="stable")
    ordered = first[order]
    if len(ordered) > 1 and (ordered[1:] == ordered[:-1]).any():
        order = np.lexsort(np.asarray(words, dtype=np.uint64)[::-1])  # stable, all four
    return order


def is_sorted(raw: np.ndarray) -> bool:
    """Whether the digests of ``raw`` are in byte order (equal neighbours allowed)."""
    words = _as_digest_array(raw).view(_WORDS).reshape(-1, 4)
    if len(words) < 2:
        return True
    before, after = words[:-1], words[1:]
    less = before[:, 0] < after[:, 0]
    equal = before[:, 0] == after[:, 0]
    for column in range(1, 4):
        less |= equal & (before[:, column] < after[:, column])
        equal &= before[:, column] == after[:, column]
    return bool((less | equal).all())


def in_spans(raw: np.ndarray, spans: Iterable[tuple[int, int]]) -> np.ndarray:
    """For each digest of ``raw``: does its first 64-bit word (big-endian) lie in one of
    the half-open ranges ``spans`` (see ``_shards.first_word_span``)?"""
    first = _as_digest_array(raw).view(_WORDS).reshape(-1, 4)[:, 0].astype(np.uint64)
    inside = np.zeros(len(first), dtype=np.bool_)
    for low, high in spans:
        above = first >= np.uint64(low)
        inside |= above if high >= 1 << 64 else above & (first < np.uint64(high))
    return inside


def contains_many(liveset: Liveset, raw: np.ndarray) -> np.ndarray:
    """For each digest of ``raw`` (a :data:`DIGEST_DTYPE` array): is it in ``liveset``?

    Uses the liveset's own ``contains_many`` when it has one, else ``in`` per digest.
    """
    arr = _as_digest_array(raw)
    method = getattr(liveset, "contains_many", None)
    if callable(method):
        result = np.asarray(method(arr))
        if result.dtype != np.bool_ or result.shape != (len(arr),):
            raise InvalidArgumentError(
                f"{type(liveset).__name__}.contains_many returned dtype {result.dtype} "
                f"shape {result.shape}; expected bool of shape ({len(arr)},)"
            )
        return result
    return np.fromiter(
        (Digest(item.tobytes()) in liveset for item in arr), dtype=np.bool_, count=len(arr)
    )


def _digest_query(digest: Any) -> np.ndarray:
    if isinstance(digest, Digest):
        raw = digest.raw
    elif isinstance(digest, bytes) and len(digest) == _DIGEST_SIZE:
        raw = digest
    else:
        raise InvalidArgumentError(
            f"a liveset holds Digests, got {type(digest).__name__} {digest!r:.80}"
        )
    return np.frombuffer(raw, dtype=DIGEST_DTYPE)


class ExactLiveset:
    """Exactly the given digests, sorted and deduplicated in a (4, n) uint64 array.

    32 bytes per digest and no Python object per digest, so tens of millions fit in
    memory. Lookups binary-search the first word, then compare the other three; only
    where digests share a first word (practically never) do they search those too.
    """

    __slots__ = ("_first_words_tie", "_words")

    def __init__(self, digests: Iterable[Digest | bytes] = ()) -> None:
        self._set_words(_sorted_unique(_words_of_chunks(list(_chunks(digests)))))

    def _set_words(self, words: np.ndarray) -> None:
        self._words = words
        self._first_words_tie = bool((words[0, 1:] == words[0, :-1]).any())

    @classmethod
    def from_array(cls, raw: np.ndarray) -> ExactLiveset:
        """A liveset of the digests in ``raw`` (a :data:`DIGEST_DTYPE` array)."""
        return cls.from_arrays([raw])

    @classmethod
    def from_arrays(cls, arrays: Iterable[np.ndarray]) -> ExactLiveset:
        """A liveset of the digests in several :data:`DIGEST_DTYPE` arrays, copied once."""
        self = cls.__new__(cls)
        self._set_words(_sorted_unique(_words_of_chunks([_as_digest_array(a) for a in arrays])))
        return self

    @classmethod
    def from_sorted_blocks(cls, blocks: Iterable[np.ndarray], capacity: int) -> ExactLiveset:
        """A liveset of digests that arrive in byte order, in blocks (:data:`DIGEST_DTYPE`
        arrays), at most ``capacity`` of them: copied once into place, duplicates
        dropped as they come, so that the peak is 32 bytes per digest plus one block.

        Raises InvalidArgumentError if a block is out of order or there are more than
        ``capacity``: the caller's promise was broken, and a liveset must not be wrong.
        """
        words = np.empty((4, capacity), dtype=np.uint64)
        filled = 0
        last: np.ndarray | None = None
        for block in blocks:
            arr = _as_digest_array(block)
            if not len(arr):
                continue
            seam_sorted = last is None or is_sorted(np.concatenate([last, arr[:1]]))
            if not (seam_sorted and is_sorted(arr)):
                raise InvalidArgumentError("digests said to be sorted are out of order")
            block_words = arr.view(_WORDS).reshape(-1, 4)
            keep = np.ones(len(arr), dtype=np.bool_)
            np.any(block_words[1:] != block_words[:-1], axis=1, out=keep[1:])
            if last is not None and arr[0].tobytes() == last[0].tobytes():
                keep[0] = False
            kept = block_words[keep]
            if filled + len(kept) > capacity:
                raise InvalidArgumentError(f"more than the {capacity} digests announced")
            words[:, filled : filled + len(kept)] = kept.T
            filled += len(kept)
            last = arr[-1:].copy()
        if filled < capacity // 2:  # give back what filtering left unused
            words = np.ascontiguousarray(words[:, :filled])
        return cls._from_sorted_words(words[:, :filled])

    @classmethod
    def _from_sorted_words(cls, words: np.ndarray) -> ExactLiveset:
        self = cls.__new__(cls)
        self._set_words(words)
        return self

    def __len__(self) -> int:
        return int(self._words.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes of memory holding the digests."""
        return int(self._words.nbytes)

    def __contains__(self, digest: object) -> bool:
        return bool(self.contains_many(_digest_query(digest))[0])

    def contains_many(self, raw: np.ndarray) -> np.ndarray:
        """For each digest of ``raw`` (a :data:`DIGEST_DTYPE` array): is it in the set?"""
        query = _as_digest_array(raw).view(_WORDS).reshape(-1, 4)  # (n, 4), not copied
        data = self._words
        n = len(query)
        found = np.zeros(n, dtype=np.bool_)
        if n == 0 or data.shape[1] == 0:
            return found
        first = query[:, 0].astype(np.uint64)
        # Work in the queries' sorted order: searchsorted and the gathers then walk the
        # data in order, about 5x faster at 1M than in random order. Listed keys come
        # sorted already, and then only the data between the first and last query counts.
        order = None
        if n > 1 and (first[1:] < first[:-1]).any():
            order = np.argsort(first)
            first, query = first[order], query[order]
        start = int(np.searchsorted(data[0], first[0]))
        stop = int(np.searchsorted(data[0], first[-1], side="right"))
        lo = np.searchsorted(data[0, start:stop], first, side="left") + start
        if self._first_words_tie:
            hi = np.searchsorted(data[0, start:stop], first, side="right") + start
            found = _search_ties(data, query.T.astype(np.uint64), lo, hi)
        else:
            # At most one digest has the query's first word: the one at ``lo``, if any.
            at = np.minimum(lo, data.shape[1] - 1)
            hits = np.flatnonzero(data[0, at] == first)
            at = at[hits]
            rest = query[hits, 1:].astype(np.uint64)
            found[hits] = (
                (data[1, at] == rest[:, 0])
                & (data[2, at] == rest[:, 1])
                & (data[3, at] == rest[:, 2])
            )
        if order is None:
            return found
        result = np.empty_like(found)
        result[order] = found
        return result

    def __iter__(self) -> Iterator[Digest]:
        """The digests in byte order, built a chunk at a time."""
        for start in range(0, len(self), _CHUNK):
            for item in self._array(start, start + _CHUNK):
                yield Digest(item.tobytes())

    def to_array(self) -> np.ndarray:
        """The digests in byte order, as a :data:`DIGEST_DTYPE` array."""
        return self._array(0, len(self))

    def _array(self, start: int, stop: int) -> np.ndarray:
        block = np.ascontiguousarray(self._words[:, start:stop].T, dtype=_WORDS)
        return block.view(DIGEST_DTYPE).reshape(-1)

    def union(self, *others: ExactLiveset) -> ExactLiveset:
        """A new liveset of every digest in this one or any of ``others``."""
        for other in others:
            if not isinstance(other, ExactLiveset):
                raise InvalidArgumentError(
                    f"can only union ExactLivesets, got {type(other).__name__}"
                )
        parts = [self._words, *(other._words for other in others)]
        return ExactLiveset._from_sorted_words(_sorted_unique(np.concatenate(parts, axis=1)))

    def __or__(self, other: object) -> ExactLiveset:
        if not isinstance(other, ExactLiveset):
            return NotImplemented
        return self.union(other)

    def __repr__(self) -> str:
        return f"ExactLiveset({len(self)} digests, {self.nbytes} bytes)"


def _words_of_chunks(chunks: list[np.ndarray]) -> np.ndarray:
    total = sum(len(chunk) for chunk in chunks)
    words = np.empty((4, total), dtype=np.uint64)
    start = 0
    for chunk in chunks:
        words[:, start : start + len(chunk)] = chunk.view(_WORDS).reshape(-1, 4).T
        start += len(chunk)
    return words


def _sorted_unique(words: np.ndarray) -> np.ndarray:
    """``words`` (4, n) with columns sorted lexicographically and duplicates dropped."""
    if words.shape[1] == 0:
        return words
    words = words[:, _word_order(words)]
    keep = np.empty(words.shape[1], dtype=np.bool_)
    keep[0] = True
    np.any(words[:, 1:] != words[:, :-1], axis=0, out=keep[1:])
    return words if keep.all() else np.ascontiguousarray(words[:, keep])


def _search_ties(data: np.ndarray, query: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Lower-bound search of ``query`` columns in ``data`` within [lo, hi), on words 1-3.

    Every column of ``data`` in [lo, hi) has the query's first word, so words 1-3 decide.
    """
    end = hi.copy()
    lo = lo.copy()
    hi = hi.copy()
    active = np.flatnonzero(lo < hi)
    while active.size:
        mid = (lo[active] + hi[active]) // 2
        d = data[1:, mid]
        q = query[1:, active]
        less = (d[0] < q[0]) | ((d[0] == q[0]) & ((d[1] < q[1]) | ((d[1] == q[1]) & (d[2] < q[2]))))
        lo[active] = np.where(less, mid + 1, lo[active])
        hi[active] = np.where(less, hi[active], mid)
        active = active[lo[active] < hi[active]]
    inside = lo < end
    found = np.zeros(len(lo), dtype=np.bool_)
    at = lo[inside]
    found[inside] = (data[1:, at] == query[1:, inside]).all(axis=0)
    return found


# Serialized Bloom filter: a 40-byte little-endian header, then ceil(m / 8) bytes of bits
# (bit i is bit i % 8 of byte i // 8). The CRC-32 covers the bits, because a flipped bit
# could turn a live digest into a miss.
_BLOOM_MAGIC = b"S3RBLOOM"
_BLOOM_VERSION = 1
_BLOOM_HEADER = struct.Struct("<8sHHIQQII")  # magic, version, flags, k, m, count, crc, 0
_MIN_BITS = 64
_MAX_BITS = 1 << 48
_MAX_HASHES = 32


class BloomLiveset:
    """A Bloom filter over digests: no false negatives, false positives at ``fp_rate``.

    A SHA-256 digest is already uniformly random, so no further hashing is needed: with
    w2, w3 the digest's last two big-endian 64-bit words, the k bit indices are
    ``(w2 + i * w3) mod m`` for i in 0..k-1 (``w3 mod m`` replaced by 1 when it is 0).
    The last words, not the first, because collection shards by digest prefix.

    Attributes: ``m`` bits, ``k`` indices per digest, ``count`` digests added so far
    (duplicates counted). Adding more than ``capacity`` raises the false-positive rate,
    never the false-negative rate.
    """

    __slots__ = ("_bits", "count", "k", "m")

    def __init__(self, capacity: int, fp_rate: float = 0.01) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise InvalidArgumentError(f"capacity must be an int >= 0, got {capacity!r}")
        if not isinstance(fp_rate, float | int) or not 0.0 < fp_rate < 1.0:
            raise InvalidArgumentError(f"fp_rate must be between 0 and 1, got {fp_rate!r}")
        n = max(capacity, 1)
        m = max(_MIN_BITS, math.ceil(-n * math.log(fp_rate) / math.log(2) ** 2))
        if m > _MAX_BITS:
            raise InvalidArgumentError(f"a Bloom filter of {m} bits is too large")
        k = min(_MAX_HASHES, max(1, round(m / n * math.log(2))))
        self._init(m, k, 0, np.zeros((m + 7) // 8, dtype=np.uint8))

    def _init(self, m: int, k: int, count: int, bits: np.ndarray) -> None:
        self.m = m
        self.k = k
        self.count = count
        self._bits = bits

    @classmethod
    def from_digests(cls, digests: Iterable[Digest | bytes], fp_rate: float = 0.01) -> BloomLiveset:
        """A filter sized for, and holding, ``digests``."""
        return cls.from_array(digests_to_array(digests), fp_rate=fp_rate)

    @classmethod
    def from_array(cls, raw: np.ndarray, fp_rate: float = 0.01) -> BloomLiveset:
        """A filter sized for, and holding, the digests of ``raw`` (:data:`DIGEST_DTYPE`)."""
        arr = _as_digest_array(raw)
        bloom = cls(len(arr), fp_rate)
        bloom.add_many(arr)
        return bloom

    @property
    def nbytes(self) -> int:
        """Bytes of memory holding the bits."""
        return int(self._bits.nbytes)

    def expected_fp_rate(self) -> float:
        """The false-positive rate expected for the digests added so far."""
        return float((1.0 - math.exp(-self.k * self.count / self.m)) ** self.k)

    def _indices(self, arr: np.ndarray) -> Iterator[np.ndarray]:
        words = arr.view(_WORDS).reshape(-1, 4)
        m = np.uint64(self.m)
        index = words[:, 2] % m
        step = words[:, 3] % m
        step[step == 0] = 1
        for i in range(self.k):
            if i:
                index = index + step  # both < m < 2**48: no overflow
                index[index >= m] -= m
            yield index

    def add(self, digest: Digest | bytes) -> None:
        """Add one digest."""
        self.add_many(_digest_query(digest))

    def add_many(self, raw: np.ndarray) -> None:
        """Add every digest of ``raw`` (a :data:`DIGEST_DTYPE` array)."""
        arr = _as_digest_array(raw)
        for index in self._indices(arr):
            # ufunc.at, not fancy |=: two digests can hit the same byte in one batch.
            masks = np.left_shift(np.uint8(1), (index & np.uint64(7)).astype(np.uint8))
            np.bitwise_or.at(self._bits, index >> np.uint64(3), masks)
        self.count += len(arr)

    def __contains__(self, digest: object) -> bool:
        return bool(self.contains_many(_digest_query(digest))[0])

    def contains_many(self, raw: np.ndarray) -> np.ndarray:
        """For each digest of ``raw``: maybe in (True), or certainly not (False)."""
        arr = _as_digest_array(raw)
        found = np.ones(len(arr), dtype=np.bool_)
        for index in self._indices(arr):
            byte = self._bits[index >> np.uint64(3)]
            found &= ((byte >> (index & np.uint64(7)).astype(np.uint8)) & 1).astype(np.bool_)
        return found

    def union(self, *others: BloomLiveset) -> BloomLiveset:
        """A filter holding everything in this one and ``others`` (same m and k)."""
        bits = self._bits.copy()
        count = self.count
        for other in others:
            if not isinstance(other, BloomLiveset) or (other.m, other.k) != (self.m, self.k):
                raise InvalidArgumentError(
                    "can only union BloomLivesets with the same number of bits and hashes"
                )
            bits |= other._bits
            count += other.count
        result = BloomLiveset.__new__(BloomLiveset)
        result._init(self.m, self.k, count, bits)
        return result

    def __or__(self, other: object) -> BloomLiveset:
        if not isinstance(other, BloomLiveset):
            return NotImplemented
        return self.union(other)

    def to_bytes(self) -> bytes:
        """The filter as bytes: a header (magic, version, k, m, count, CRC-32) and the bits."""
        body = self._bits.tobytes()
        header = _BLOOM_HEADER.pack(
            _BLOOM_MAGIC, _BLOOM_VERSION, 0, self.k, self.m, self.count, zlib.crc32(body), 0
        )
        return header + body

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> BloomLiveset:
        """The filter :meth:`to_bytes` wrote; InvalidArgumentError for anything else."""
        data = bytes(data)
        if len(data) < _BLOOM_HEADER.size:
            raise InvalidArgumentError(
                f"not a Bloom liveset: {len(data)} bytes is shorter than its "
                f"{_BLOOM_HEADER.size}-byte header"
            )
        magic, version, flags, k, m, count, crc, reserved = _BLOOM_HEADER.unpack_from(data)
        if magic != _BLOOM_MAGIC:
            raise InvalidArgumentError(f"not a Bloom liveset: bad magic {magic!r}")
        if version != _BLOOM_VERSION:
            raise InvalidArgumentError(f"unsupported Bloom liveset version {version}")
        if flags != 0 or reserved != 0:
            raise InvalidArgumentError("corrupt Bloom liveset header: reserved fields set")
        if not 1 <= k <= _MAX_HASHES:
            raise InvalidArgumentError(f"corrupt Bloom liveset header: k = {k}")
        if not _MIN_BITS <= m <= _MAX_BITS:
            raise InvalidArgumentError(f"corrupt Bloom liveset header: m = {m}")
        body = data[_BLOOM_HEADER.size :]
        if len(body) != (m + 7) // 8:
            raise InvalidArgumentError(
                f"corrupt Bloom liveset: {len(body)} bytes of bits, expected {(m + 7) // 8}"
            )
        if zlib.crc32(body) != crc:
            raise InvalidArgumentError("corrupt Bloom liveset: the bits fail their CRC-32")
        bits = np.frombuffer(body, dtype=np.uint8).copy()
        if m % 8 and bits[-1] >> (m % 8):
            raise InvalidArgumentError("corrupt Bloom liveset: bits set beyond m")
        bloom = cls.__new__(cls)
        bloom._init(m, k, count, bits)
        return bloom

    def __repr__(self) -> str:
        return f"BloomLiveset(m={self.m}, k={self.k}, count={self.count})"
