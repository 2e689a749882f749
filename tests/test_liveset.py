"""Livesets answer membership exactly (ExactLiveset) or without false negatives (Bloom)."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest

from s3repo_core._digest import Digest
from s3repo_core._errors import InvalidArgumentError
from s3repo_core.liveset import (
    DIGEST_DTYPE,
    BatchLiveset,
    BloomLiveset,
    ExactLiveset,
    Liveset,
    contains_many,
    digests_to_array,
)


def random_array(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.frombuffer(rng.bytes(32 * n), dtype=DIGEST_DTYPE)


def digests(n: int, seed: int = 0) -> list[Digest]:
    return [Digest.of(f"{seed}-{i}".encode()) for i in range(n)]


def prefix_sharing() -> list[Digest]:
    """Digests that agree on long prefixes, including whole first 8-byte words."""
    base = bytes(range(32))
    out = []
    for shared in (8, 16, 24, 31):  # share the first `shared` bytes with base
        for last in range(20):
            raw = bytearray(base)
            raw[shared] = (raw[shared] + 1 + last) % 256
            out.append(Digest(bytes(raw)))
    out.append(Digest(base))
    out.append(Digest(b"\x00" * 32))  # trailing NULs must survive the array form
    out.append(Digest(b"\xff" * 32))
    out.append(Digest(b"\x01" + b"\x00" * 31))
    return out


# -- the batch representation ---------------------------------------------------------


def test_digests_to_array_keeps_every_byte_including_trailing_nuls() -> None:
    ds = [Digest(b"\x07" + b"\x00" * 31), Digest.of(b"a"), Digest(b"\x00" * 32)]
    arr = digests_to_array([ds[0], ds[1].raw, ds[2]])
    assert arr.dtype == DIGEST_DTYPE and arr.shape == (3,)
    assert [item.tobytes() for item in arr] == [d.raw for d in ds]


def test_digests_to_array_rejects_wrong_items() -> None:
    with pytest.raises(InvalidArgumentError, match="#1"):
        digests_to_array([Digest.of(b"a"), b"short"])
    with pytest.raises(InvalidArgumentError, match="Digest or 32 raw bytes"):
        digests_to_array(["sha256:" + "0" * 64])


def test_digests_to_array_of_nothing_is_empty() -> None:
    arr = digests_to_array([])
    assert arr.dtype == DIGEST_DTYPE and len(arr) == 0


def test_contains_many_rejects_other_dtypes() -> None:
    live = ExactLiveset(digests(3))
    with pytest.raises(InvalidArgumentError, match="V32"):
        live.contains_many(np.array([b"x" * 32], dtype="S32"))


def test_an_n_by_32_uint8_array_is_accepted_too() -> None:
    ds = digests(5)
    live = ExactLiveset(ds[:3])
    as_bytes = np.frombuffer(b"".join(d.raw for d in ds), dtype=np.uint8).reshape(5, 32)
    assert live.contains_many(as_bytes).tolist() == [True, True, True, False, False]


# -- the protocols --------------------------------------------------------------------


def test_anything_with_in_is_a_liveset_and_the_fallback_asks_it() -> None:
    ds = digests(10)
    plain = set(ds[:4])
    assert isinstance(plain, Liveset)
    assert not isinstance(plain, BatchLiveset)
    assert isinstance(ExactLiveset(), BatchLiveset)
    assert isinstance(BloomLiveset(10), BatchLiveset)
    got = contains_many(plain, digests_to_array(ds))
    assert got.dtype == np.bool_
    assert got.tolist() == [True] * 4 + [False] * 6


def test_module_contains_many_uses_the_method_when_present() -> None:
    ds = digests(10)
    live = ExactLiveset(ds[::2])
    assert contains_many(live, digests_to_array(ds)).tolist() == [True, False] * 5


# -- ExactLiveset ---------------------------------------------------------------------


def test_exact_membership_members_and_non_members() -> None:
    members, others = digests(200, seed=1), digests(200, seed=2)
    live = ExactLiveset(members)
    assert len(live) == 200
    assert all(d in live for d in members)
    assert not any(d in live for d in others)


def test_exact_accepts_raw_bytes_and_deduplicates() -> None:
    ds = digests(50)
    live = ExactLiveset([*ds, *(d.raw for d in ds), *ds[:10]])
    assert len(live) == 50
    assert live.nbytes == 50 * 32
    assert sorted(live) == sorted(ds)


def test_exact_empty() -> None:
    live = ExactLiveset()
    assert len(live) == 0
    assert Digest.of(b"x") not in live
    assert live.contains_many(digests_to_array(digests(3))).tolist() == [False] * 3
    assert live.contains_many(digests_to_array([])).shape == (0,)
    assert list(live) == []


def test_exact_with_long_shared_prefixes_and_first_word_collisions() -> None:
    members = prefix_sharing()
    live = ExactLiveset(members)
    assert len(live) == len(set(members))
    assert all(d in live for d in members)
    # Near misses: each member with its last byte changed, unless that is a member too.
    member_set = set(members)
    near = []
    for d in members:
        raw = bytearray(d.raw)
        raw[31] ^= 0x80
        if Digest(bytes(raw)) not in member_set:
            near.append(Digest(bytes(raw)))
    assert near
    assert not any(d in live for d in near)
    query = digests_to_array(members + near)
    assert live.contains_many(query).tolist() == [True] * len(members) + [False] * len(near)


def test_exact_many_digests_share_their_first_word() -> None:
    rng = np.random.default_rng(7)
    arr = random_array(5000, rng).copy()
    words = arr.view(">u8").reshape(-1, 4)
    words[:4000, 0] = 0x0123456789ABCDEF  # 4000 digests, one first word
    live = ExactLiveset.from_array(arr)
    absent = random_array(5000, rng).copy()
    absent.view(">u8").reshape(-1, 4)[:2500, 0] = 0x0123456789ABCDEF
    assert live.contains_many(arr).all()
    assert not live.contains_many(absent).any()


def test_exact_contains_many_equals_per_element_in() -> None:
    rng = np.random.default_rng(3)
    members = random_array(3000, rng)
    live = ExactLiveset.from_array(members)
    query = np.concatenate([members[::3], random_array(1000, rng), members[1::7]])
    rng.shuffle(query)
    expected = [Digest(item.tobytes()) in live for item in query]
    assert live.contains_many(query).tolist() == expected
    assert sum(expected) == len(members[::3]) + len(members[1::7])


@pytest.mark.parametrize("sort", [True, False])
def test_exact_near_misses_in_every_word_are_not_members(sort: bool) -> None:
    rng = np.random.default_rng(11)
    members = random_array(4000, rng)
    live = ExactLiveset.from_array(members)
    near = []
    for byte in (0, 7, 8, 15, 16, 23, 24, 31):  # the first and last byte of each word
        changed = members[::5].copy()
        changed.view(np.uint8).reshape(-1, 32)[:, byte] ^= 0x01
        near.append(changed)
    edges = np.frombuffer(b"\x00" * 32 + b"\xff" * 32, dtype="V32")
    query = np.concatenate([members[::2], *near, edges])
    if sort:
        query = np.sort(query)
    else:
        rng.shuffle(query)
    stored = {m.tobytes() for m in members}
    expected = [item.tobytes() in stored for item in query]
    assert live.contains_many(query).tolist() == expected
    assert sum(expected) == len(members[::2])


def test_exact_to_array_is_sorted_bytes() -> None:
    rng = np.random.default_rng(4)
    members = random_array(1000, rng)
    out = ExactLiveset.from_array(members).to_array()
    assert [x.tobytes() for x in out] == sorted(x.tobytes() for x in members)


def test_exact_union() -> None:
    a_digests, b_digests = digests(300, seed=1), digests(300, seed=2)
    shared = digests(50, seed=3)
    a = ExactLiveset(a_digests + shared)
    b = ExactLiveset(b_digests + shared)
    u = a | b
    assert len(u) == 650
    assert set(u) == set(a_digests) | set(b_digests) | set(shared)
    assert set(ExactLiveset.union(a, b, ExactLiveset())) == set(u)
    assert Digest.of(b"nope") not in u


def test_exact_from_iterator_streams() -> None:
    # More than one internal chunk, from a generator that cannot be re-read.
    n = 70_000
    live = ExactLiveset(Digest.of(i.to_bytes(4, "big")) for i in range(n))
    assert len(live) == n
    assert Digest.of((n - 1).to_bytes(4, "big")) in live
    assert Digest.of(n.to_bytes(4, "big")) not in live


def test_exact_rejects_things_that_are_not_digests() -> None:
    live = ExactLiveset(digests(3))
    with pytest.raises(InvalidArgumentError):
        "sha256:" + "0" * 64 in live  # noqa: B015 - the membership test is what raises
    with pytest.raises(InvalidArgumentError):
        ExactLiveset([b"too short"])


def test_exact_million_digests_are_compact() -> None:
    rng = np.random.default_rng(11)
    members = random_array(1_000_000, rng)
    live = ExactLiveset.from_array(members)
    assert len(live) == 1_000_000
    assert live.nbytes < 40 * 1024 * 1024
    sample = np.concatenate([members[::1000], random_array(1000, rng)])
    assert live.contains_many(sample).tolist() == [True] * 1000 + [False] * 1000


# -- BloomLiveset ---------------------------------------------------------------------


def test_bloom_never_has_false_negatives() -> None:
    rng = np.random.default_rng(2024)
    for _ in range(50):
        n = int(rng.integers(0, 5000))
        fp = float(rng.choice([0.5, 0.1, 0.01, 0.001]))
        members = random_array(n, rng)
        bloom = BloomLiveset.from_array(members, fp_rate=fp)
        assert bloom.contains_many(members).all()
        if n:
            assert Digest(members[-1].tobytes()) in bloom


def test_bloom_added_one_at_a_time_equals_added_in_bulk() -> None:
    ds = digests(500)
    one = BloomLiveset(500)
    for d in ds:
        one.add(d)
    bulk = BloomLiveset.from_digests(ds)
    assert one.to_bytes() == bulk.to_bytes()
    assert one.count == 500


def test_bloom_false_positive_rate_is_near_the_requested_rate() -> None:
    rng = np.random.default_rng(5)
    for fp in (0.01, 0.05):
        bloom = BloomLiveset.from_array(random_array(100_000, rng), fp_rate=fp)
        measured = bloom.contains_many(random_array(200_000, rng)).mean()
        assert fp / 2 < measured < fp * 2, (fp, measured)
        assert fp / 2 < bloom.expected_fp_rate() < fp * 2


def test_bloom_is_small() -> None:
    bloom = BloomLiveset(1_000_000, fp_rate=0.01)
    assert bloom.nbytes < 1.25 * 1_000_000  # about 9.6 bits per digest
    assert bloom.k == 7


@pytest.mark.parametrize(
    "raw",
    [bytes(range(32)), bytes(range(24)) + b"\x00" * 8],  # w3 = 0: step 1, not 0
    ids=["ordinary", "zero-step"],
)
def test_bloom_bits_sit_where_the_documented_indices_say(raw: bytes) -> None:
    d = Digest(raw)
    bloom = BloomLiveset(10, fp_rate=0.01)
    bloom.add(d)
    w2, w3 = struct.unpack(">QQ", d.raw[16:])
    expected = {(w2 + i * (w3 % bloom.m or 1)) % bloom.m for i in range(bloom.k)}
    bits = np.unpackbits(np.frombuffer(bloom.to_bytes()[40:], np.uint8), bitorder="little")
    assert len(expected) == bloom.k
    assert set(np.flatnonzero(bits).tolist()) == expected


def test_bloom_round_trip_through_bytes_gives_identical_answers() -> None:
    rng = np.random.default_rng(9)
    members = random_array(20_000, rng)
    bloom = BloomLiveset.from_array(members, fp_rate=0.02)
    copy = BloomLiveset.from_bytes(bloom.to_bytes())
    assert (copy.m, copy.k, copy.count) == (bloom.m, bloom.k, bloom.count)
    query = np.concatenate([members, random_array(50_000, rng)])
    assert (copy.contains_many(query) == bloom.contains_many(query)).all()
    assert copy.to_bytes() == bloom.to_bytes()


def test_bloom_union() -> None:
    a_digests, b_digests = digests(1000, seed=1), digests(1000, seed=2)
    a = BloomLiveset(2000)
    b = BloomLiveset(2000)
    a.add_many(digests_to_array(a_digests))
    b.add_many(digests_to_array(b_digests))
    u = a | b
    assert u.contains_many(digests_to_array(a_digests + b_digests)).all()
    assert u.count == 2000
    with pytest.raises(InvalidArgumentError):
        a.union(BloomLiveset(10))


def _header(data: bytes, **fields: int) -> bytes:
    names = ["magic", "version", "flags", "k", "m", "count", "crc", "reserved"]
    values = dict(zip(names, struct.unpack_from("<8sHHIQQII", data), strict=True))
    values.update(fields)
    return struct.pack("<8sHHIQQII", *values.values()) + data[40:]


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: b[:20], id="truncated-header"),
        pytest.param(lambda b: b[:-1], id="truncated-bits"),
        pytest.param(lambda b: b + b"\x00", id="trailing-byte"),
        pytest.param(lambda b: b"NOTBLOOM" + b[8:], id="magic"),
        pytest.param(lambda b: _header(b, version=2), id="version"),
        pytest.param(lambda b: _header(b, flags=1), id="flags"),
        pytest.param(lambda b: _header(b, k=0), id="k-zero"),
        pytest.param(lambda b: _header(b, k=1000), id="k-huge"),
        pytest.param(lambda b: _header(b, m=8), id="m-small"),
        pytest.param(lambda b: _header(b, m=1 << 62), id="m-huge"),
        pytest.param(lambda b: _header(b, reserved=7), id="reserved"),
        pytest.param(lambda b: b[:-1] + bytes([b[-1] ^ 1]), id="flipped-bit"),
    ],
)
def test_bloom_from_bytes_rejects_corrupt_input(corrupt: Callable[[bytes], bytes]) -> None:
    data = BloomLiveset.from_digests(digests(100)).to_bytes()
    assert BloomLiveset.from_bytes(data).count == 100  # the original is fine
    with pytest.raises(InvalidArgumentError):
        BloomLiveset.from_bytes(corrupt(data))


def test_bloom_argument_checks() -> None:
    for bad in (0.0, 1.0, -0.1, 2):
        with pytest.raises(InvalidArgumentError):
            BloomLiveset(10, fp_rate=bad)
    for bad_capacity in (-1, 1.5, True):
        with pytest.raises(InvalidArgumentError):
            BloomLiveset(bad_capacity)


def test_bloom_empty_holds_nothing() -> None:
    bloom = BloomLiveset(0)
    assert not bloom.contains_many(digests_to_array(digests(100))).any()
    assert bloom.contains_many(digests_to_array([])).shape == (0,)


def test_exact_from_several_arrays_is_their_union() -> None:
    rng = np.random.default_rng(12)
    a, b = random_array(1000, rng), random_array(1000, rng)
    live = ExactLiveset.from_arrays([a, b, a[:10], np.empty(0, dtype=DIGEST_DTYPE)])
    assert len(live) == 2000
    assert set(live) == set(ExactLiveset.from_array(a) | ExactLiveset.from_array(b))
