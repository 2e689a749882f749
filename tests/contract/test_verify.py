"""Verification: stored objects are hashed again, and what does not match is found.

``verify`` reports corrupt, truncated and missing objects rather than raising; a
mismatch that a second read (or the server's own checksum) does not confirm is
*unconfirmed*, and ``quarantine=True`` moves only confirmed ones out of ``objects/``,
so that the next put of the right bytes stores them again.
"""

from __future__ import annotations

import json
import threading
from typing import Any, cast

import pytest
from contract_kit import AGE, TRANSPORT, WINDOWS, Impl, MiB, S3Impl, payload

from s3repo_core import (
    ConflictError,
    Digest,
    ExactLiveset,
    File,
    InvalidArgumentError,
    NotExistError,
    Repository,
    S3Repository,
    VerifyReport,
)

from faultproxy import FaultProxy, request_kind

NOTHING = ExactLiveset([])


def flip(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def put_many(repo: Repository, n: int, tag: int, size: int = 100) -> list[Digest]:
    return [repo.put(payload(size, seed=tag * 1000 + i)) for i in range(n)]


def stored(impl: Impl) -> list[str]:
    """The stored keys, less the empty directories (``quarantine/<digest>/``) that the
    JuiceFS gateway lists once a DeleteObjects has emptied them: they hold no bytes."""
    return [key for key in impl.stored_keys() if not key.endswith("/")]


def quarantine_keys(impl: Impl) -> list[str]:
    return [key for key in stored(impl) if key.startswith(impl.store_key("quarantine/"))]


def read_key(impl: Impl, key: str) -> bytes:
    """The bytes at a store key, behind the repository's back."""
    return cast(Any, impl.repo).store.read(key)  # type: ignore[no-any-return]


def assert_clean(report: VerifyReport) -> None:
    found = (report.corrupt, report.truncated, report.missing, report.quarantined)
    assert found == ([], [], [], []), report.summary()
    assert report.unconfirmed == [] and not report.failed


# -- what is found ----------------------------------------------------------------------


def test_a_clean_repository_verifies_every_object_once(impl: Impl) -> None:
    sizes = [0, 1, 1000, 2 * MiB + 5, 6 * MiB + 1]  # empty, small, chunked, in parts
    digests = [impl.repo.put(payload(size, seed=i)) for i, size in enumerate(sizes)]
    seen: list[tuple[Digest, int, str]] = []

    report = impl.repo.verify(
        on_checked=lambda d, n: seen.append((d, n, threading.current_thread().name))
    )

    assert_clean(report)
    assert report.checked == len(sizes)
    assert report.bytes_read == sum(sizes)
    assert sorted((d, n) for d, n, _ in seen) == sorted(zip(digests, sizes, strict=True))
    assert all(name.startswith("s3repo-verify") for *_, name in seen)  # worker threads
    assert report.duration > 0
    assert json.loads(json.dumps(report.to_dict()))["checked"] == len(sizes)
    assert "every one matches" in report.summary()
    # Asked for by digest or File, with the right sizes: the same.
    files = [File(d, n) for d, n in zip(digests, sizes, strict=True)]
    again = impl.repo.verify([*files[:3], *map(str, digests[3:]), digests[0]])
    assert_clean(again)
    assert (again.checked, again.bytes_read) == (len(sizes), sum(sizes))
    assert impl.repo.verify([]).checked == 0


def test_a_flipped_byte_is_corrupt_and_nothing_is_moved(impl: Impl) -> None:
    good = put_many(impl.repo, 4, tag=1)
    data = payload(3000, seed=7)
    bad = impl.repo.put(data)
    impl.tamper(bad, flip(data))
    before = impl.stored_keys()

    for report in (impl.repo.verify(), impl.repo.verify([bad, *good]), impl.repo.verify([bad])):
        assert report.corrupt == [bad], report.summary()
        assert (report.truncated, report.missing, report.quarantined) == ([], [], [])
        assert report.unconfirmed == [] and report.failed
    report = impl.repo.verify()
    assert report.checked == 5
    assert report.bytes_read == 4 * 100 + 2 * 3000  # the corrupt one read twice
    assert report.to_dict()["corrupt"] == [str(bad)]
    assert str(bad) in report.summary() and "1 corrupt" in report.summary()
    assert impl.stored_keys() == before  # reporting moves nothing, leaves no lease


def test_a_file_longer_than_the_stored_object_is_truncated_without_a_read(impl: Impl) -> None:
    data = payload(5000, seed=8)
    digest = impl.repo.put(data)
    impl.tamper(digest, data[:-10])

    report = impl.repo.verify([File(digest, len(data))])
    assert (report.truncated, report.corrupt, report.checked) == ([digest], [], 1)
    assert report.bytes_read == 0 and report.failed
    # Stored longer than the File says: corrupt, also without a read.
    other = impl.repo.put(payload(100, seed=9))
    report = impl.repo.verify([File(other, 99)])
    assert (report.corrupt, report.truncated, report.bytes_read) == ([other], [], 0)
    # Without a size to compare, a short object is corrupt: its bytes do not hash.
    assert impl.repo.verify([digest]).corrupt == [digest]


def test_a_digest_not_stored_is_missing_and_a_listing_never_says_so(impl: Impl) -> None:
    stored = impl.repo.put(b"stored")
    absent = Digest.of(b"never stored")

    report = impl.repo.verify([absent, File(stored, 6)])
    assert (report.missing, report.checked, report.bytes_read) == ([absent], 2, 6)
    assert report.failed and not report.corrupt
    listed = impl.repo.verify()
    assert_clean(listed)
    assert listed.checked == 1


def test_shards_restrict_what_is_verified(impl: Impl) -> None:
    digests = put_many(impl.repo, 24, tag=2)
    shard = digests[0].hex[0]
    inside = [d for d in digests if d.hex.startswith(shard)]
    outside = next(d for d in digests if not d.hex.startswith(shard))
    impl.tamper(outside, b"damaged")

    report = impl.repo.verify(shards=[shard])
    assert_clean(report)
    assert report.checked == len(inside)
    given = impl.repo.verify(digests, shards=[shard, "other", "uploads"])
    assert (given.checked, given.corrupt) == (len(inside), [])
    assert impl.repo.verify(shards=["other", "uploads"]).checked == 0  # no objects there
    two = impl.repo.verify(shards=[digests[0].hex[:2], outside.hex[:2]])
    assert two.corrupt == [outside]
    for bad in (["g"], ["a", "ab"], ["a", "a"], ["12345"]):
        with pytest.raises(InvalidArgumentError):
            impl.repo.verify(shards=bad)


def test_a_sample_checks_each_object_with_its_probability(impl: Impl) -> None:
    n = 60
    put_many(impl.repo, n, tag=3, size=10)
    assert impl.repo.verify(sample=1.0).checked == n
    # 60 draws of a quarter: fewer than 2 or more than 35 with probability < 1e-5.
    checked = impl.repo.verify(sample=0.25).checked
    assert 2 <= checked <= 35, checked
    for bad in (0, 0.0, -0.5, 1.5, float("nan"), True):
        with pytest.raises(InvalidArgumentError):
            impl.repo.verify(sample=bad)


def test_malformed_digests_are_refused(impl: Impl) -> None:
    digest = impl.repo.put(b"one")
    for bad in (["sha256:nothex"], [digest, 42], str(digest), digest):
        with pytest.raises(InvalidArgumentError):
            impl.repo.verify(bad)  # type: ignore[arg-type]


# -- quarantine ---------------------------------------------------------------------------


def test_quarantine_moves_a_corrupt_object_and_a_put_stores_it_again(impl: Impl) -> None:
    keep = put_many(impl.repo, 3, tag=4)
    data = payload(2 * MiB + 3, seed=10)
    bad = impl.repo.put(data)
    impl.tamper(bad, flip(data))

    report = impl.repo.verify(quarantine=True)

    assert (report.corrupt, report.quarantined, report.unconfirmed) == ([bad], [bad], [])
    assert report.failed  # still: its bytes must be put again
    assert impl.key(bad) not in impl.stored_keys()
    [moved] = quarantine_keys(impl)
    assert moved.startswith(impl.store_key(f"quarantine/{bad}/"))
    assert read_key(impl, moved) == flip(data)  # the bytes that failed, kept to look at
    assert not [k for k in impl.stored_keys() if "/collections/" in f"/{k}"]  # lease gone
    with pytest.raises(NotExistError):
        impl.repo.stat(bad)
    # A quarantined object is missing to whoever asks for it by digest.
    asked = impl.repo.verify([bad, *keep])
    assert (asked.missing, asked.corrupt, asked.checked) == ([bad], [], 4)
    # The key is gone, so a put writes the right bytes again.
    with impl.count_writes() as written:
        assert impl.repo.put(data) == bad
    assert written.bytes == len(data)
    assert_clean(impl.repo.verify())
    with impl.repo.get(bad) as stream:
        assert stream.read() == data


def test_quarantine_moves_a_truncated_object(impl: Impl) -> None:
    data = payload(4000, seed=11)
    digest = impl.repo.put(data)
    impl.tamper(digest, data[:1000])

    report = impl.repo.verify([File(digest, len(data))], quarantine=True)

    assert (report.truncated, report.quarantined, report.corrupt) == ([digest], [digest], [])
    assert impl.key(digest) not in impl.stored_keys()
    assert len(quarantine_keys(impl)) == 1


def test_quarantine_moves_many_corrupt_objects_of_one_shard_in_one_run(impl: Impl) -> None:
    """Each move holds a lease on its shard: the run's moves must not refuse each other."""
    bodies: dict[Digest, bytes] = {}
    seed = 0
    while len(bodies) < 6:  # six digests that share a first hex digit
        data = payload(300, seed=1000 + seed)
        seed += 1
        if Digest.of(data).hex[0] == "a":
            bodies[impl.repo.put(data)] = data
    for digest, data in bodies.items():
        impl.tamper(digest, flip(data))

    report = impl.repo.verify(quarantine=True)

    bad = sorted(bodies)
    assert (report.corrupt, report.quarantined) == (bad, bad)
    assert len(quarantine_keys(impl)) == 6


def test_quarantine_keeps_an_object_whose_file_has_the_wrong_size(impl: Impl) -> None:
    """A File's size is a claim: quarantine reads the bytes, and good ones stay."""
    data = payload(500, seed=12)
    digest = impl.repo.put(data)
    report = impl.repo.verify([File(digest, 600)], quarantine=True)
    assert (report.unconfirmed, report.quarantined, report.truncated) == ([digest], [], [])
    assert quarantine_keys(impl) == [] and impl.key(digest) in impl.stored_keys()


def test_quarantine_of_a_clean_repository_moves_nothing(impl: Impl) -> None:
    put_many(impl.repo, 5, tag=5)
    before = impl.stored_keys()
    assert_clean(impl.repo.verify(quarantine=True))
    assert impl.stored_keys() == before


def test_quarantine_leaves_an_object_rewritten_after_it_was_verified(
    impl: Impl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the version verified is removed: good bytes put meanwhile stay."""
    data = payload(1000, seed=13)
    digest = impl.repo.put(data)
    impl.tamper(digest, flip(data))
    copy = impl.repo._copy_key  # type: ignore[attr-defined]

    def copy_then_repair(src: str, dst: str, size: int) -> None:
        copy(src, dst, size)
        impl.tamper(digest, data)  # a writer's good bytes land before the delete

    monkeypatch.setattr(impl.repo, "_copy_key", copy_then_repair)
    report = impl.repo.verify(quarantine=True)

    assert (report.unconfirmed, report.quarantined, report.corrupt) == ([digest], [], [])
    assert quarantine_keys(impl) == []  # its copy is removed again
    with impl.repo.get(digest) as stream:
        assert stream.read() == data


def test_quarantine_yields_to_a_collection_of_the_shard(impl: Impl) -> None:
    data = payload(700, seed=14)
    digest = impl.repo.put(data)
    impl.tamper(digest, flip(data))
    # A live lease of a collection of the digest's shard (first among equals by its key).
    shard = json.dumps({"shards": [digest.hex[0]]}).encode()
    lease = impl.write_key("collections/0000000000000000", shard)
    with pytest.raises(ConflictError):
        impl.repo.verify(quarantine=True)
    assert impl.key(digest) in impl.stored_keys() and quarantine_keys(impl) == []
    assert impl.stored_keys() == sorted([lease, impl.key(digest)])  # ours is removed
    cast(Any, impl.repo).store.delete(lease)
    assert impl.repo.verify(quarantine=True).quarantined == [digest]


def test_collection_purges_quarantined_objects_after_the_grace(impl: Impl) -> None:
    live = put_many(impl.repo, 2, tag=6)
    data = payload(900, seed=15)
    bad = impl.repo.put(data)
    impl.tamper(bad, flip(data))
    assert impl.repo.verify(quarantine=True).quarantined == [bad]

    young = impl.repo.collect(ExactLiveset(live))
    assert young.quarantine_removed == 0 and len(quarantine_keys(impl)) == 1
    impl.age(AGE)
    dry = impl.repo.collect(ExactLiveset(live), dry_run=True)
    assert dry.quarantine_removed == 1 and len(quarantine_keys(impl)) == 1
    report = impl.repo.collect(ExactLiveset(live))
    assert report.quarantine_removed == 1 and report.collected == 0
    assert "1 quarantined objects purged" in report.summary()
    assert report.to_dict()["quarantine_removed"] == 1
    assert report.merge(young).quarantine_removed == 1
    assert quarantine_keys(impl) == []
    assert stored(impl) == sorted(impl.key(d) for d in live)
    assert impl.repo.collect(ExactLiveset(live)).quarantine_removed == 0


# -- reads damaged in transit -------------------------------------------------------------


def proxied_repo(impl: S3Impl, proxy: FaultProxy) -> S3Repository:
    """The repository under test, read through ``proxy``."""
    client = impl.server.client(endpoint_url=proxy.endpoint_url)
    return S3Repository(impl.bucket, impl.prefix, client=client, part_size=5 * MiB, **WINDOWS)


def test_a_read_damaged_in_transit_quarantines_nothing(impl: Impl) -> None:
    impl.require(TRANSPORT)
    s3 = cast(S3Impl, impl)
    data = payload(300_000, seed=16)
    digest = impl.repo.put(data)
    flipped: list[str] = []

    def first_get_only(number: int, method: str, path: str) -> None:
        if request_kind(method, path) == "GET object" and not flipped:
            flipped.append(path)
            proxy.set_rates({})  # this one was drawn already: it is flipped, no other

    with FaultProxy(s3.server.port, rates={"flip": 1.0}, on_request=first_get_only) as proxy:
        report = proxied_repo(s3, proxy).verify(quarantine=True)
    assert proxy.faults["flip"] == 1 and len(flipped) == 1
    assert (report.unconfirmed, report.corrupt, report.quarantined) == ([digest], [], [])
    assert not report.failed and report.checked == 1
    assert quarantine_keys(impl) == []
    with impl.repo.get(digest) as stream:
        assert stream.read() == data


def test_the_servers_checksum_outweighs_reads_that_keep_failing(impl: Impl) -> None:
    """Every read damaged, but S3 kept the object's SHA-256: nothing is quarantined."""
    impl.require(TRANSPORT)
    s3 = cast(S3Impl, impl)
    data = payload(200_000, seed=17)
    digest = Digest.of(data)
    key = impl.key(digest)
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=data, ChecksumAlgorithm="SHA256")
    head = s3.client.head_object(Bucket=s3.bucket, Key=key, ChecksumMode="ENABLED")
    if "ChecksumSHA256" not in head:
        pytest.skip(f"{impl.kind} keeps no SHA-256 of an object's bytes")

    with FaultProxy(s3.server.port, rates={"flip": 1.0}) as proxy:
        report = proxied_repo(s3, proxy).verify([digest], quarantine=True)
    assert proxy.faults["flip"] == 2  # the first read and the second
    assert (report.unconfirmed, report.corrupt, report.quarantined) == ([digest], [], [])
    assert quarantine_keys(impl) == [] and key in impl.stored_keys()
