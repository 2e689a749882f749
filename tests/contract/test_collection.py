"""Collection: what it keeps, what it deletes, and when.

Objects are aged with ``impl.age`` (past ``grace``, on the store's clock), never by
waiting where the implementation can avoid it.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from contract_kit import AGE, UPLOADS, Impl

from s3repo_core import (
    ConflictError,
    Digest,
    File,
    InvalidArgumentError,
    NotExistError,
    Repository,
)
from s3repo_core.liveset import ExactLiveset

NOTHING = ExactLiveset([])


def put_many(repo: Repository, n: int, tag: str) -> list[Digest]:
    return [repo.put(f"{tag}-{i}".encode()) for i in range(n)]


def stored(repo: Repository, digest: Digest) -> bool:
    try:
        repo.stat(digest)
    except NotExistError:
        return False
    return True


def test_collect_keeps_the_liveset_and_what_is_recent_and_deletes_the_rest(impl: Impl) -> None:
    repo = impl.repo
    live = put_many(repo, 6, "live")
    dead = put_many(repo, 5, "dead")
    impl.age(AGE)
    recent = put_many(repo, 4, "recent")
    report = repo.collect(ExactLiveset(live))
    assert (report.scanned, report.live, report.kept_recent, report.collected) == (15, 6, 4, 5)
    assert report.bytes_collected == sum(len(f"dead-{i}") for i in range(5))
    assert report.live_bytes == sum(len(f"live-{i}") for i in range(6))
    assert report.errors == [] and not report.failed and not report.dry_run
    assert report.repository == repo.url
    assert all(stored(repo, d) for d in live + recent)
    assert not any(stored(repo, d) for d in dead)
    assert impl.stored_keys() == sorted(impl.key(d) for d in live + recent)  # no lease left
    # An explicit older threshold keeps more: here, everything is newer than a day ago.
    report = repo.collect(NOTHING, threshold=datetime.now(UTC) - timedelta(days=1))
    assert (report.collected, report.kept_recent) == (0, 10)


def test_a_threshold_newer_than_the_grace_period_is_refused(impl: Impl) -> None:
    digest = impl.repo.put(b"young")
    with pytest.raises(InvalidArgumentError, match="grace"):
        impl.repo.collect(NOTHING, threshold=datetime.now(UTC))
    with pytest.raises(InvalidArgumentError, match="grace"):
        impl.repo.collect(NOTHING, threshold=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(InvalidArgumentError, match="timezone"):
        impl.repo.collect(NOTHING, threshold=datetime.now() - timedelta(days=1))
    assert impl.repo.stat(digest) == File(digest, 5)
    assert impl.stored_keys() == [impl.key(digest)]  # no lease left behind


def test_a_dry_run_reports_exactly_what_a_real_run_deletes(impl: Impl) -> None:
    repo = impl.repo
    live = put_many(repo, 20, "live")
    put_many(repo, 30, "dead")
    impl.age(AGE)
    before = impl.stored_keys()
    dry = repo.collect(ExactLiveset(live), dry_run=True, keep_keys=True)
    assert dry.dry_run and dry.collected == 30
    assert impl.stored_keys() == before  # deleted nothing, wrote no lease
    real = repo.collect(ExactLiveset(live), keep_keys=True)
    assert sorted(dry.collected_keys or []) == sorted(real.collected_keys or [])
    assert set(dry.collected_keys or []) == set(before) - set(impl.stored_keys())
    assert (dry.scanned, dry.live, dry.collected, dry.bytes_collected) == (
        real.scanned,
        real.live,
        real.collected,
        real.bytes_collected,
    )


def test_keys_that_are_not_digests_are_reported_and_left_alone(impl: Impl) -> None:
    digest = impl.repo.put(b"valid")
    odd = [
        impl.stray_key(name)
        for name in (
            "README",
            "sha256:abc",
            f"sha256:{'A' * 64}",
            f"sha512:{'a' * 64}",
            f"sha256:{'f' * 64}.bak",
            f"sha256:{'0' * 63}",
        )
    ]
    impl.age(AGE)
    dry = impl.repo.collect(NOTHING, dry_run=True)
    report = impl.repo.collect(NOTHING)
    for seen in (dry, report):
        assert sorted(seen.invalid_keys) == sorted(odd)
        assert (seen.invalid_count, seen.collected) == (len(odd), 1)
    assert impl.object_keys() == sorted(odd)
    assert not stored(impl.repo, digest)


def test_stale_uploads_are_removed_and_fresh_ones_kept(impl: Impl) -> None:
    impl.require(UPLOADS)
    stale = impl.write_key("uploads/0123456789abcdef", b"left over by a writer that died")
    impl.age(AGE)
    fresh = impl.write_key("uploads/aaaaaaaaaaaaaaaa", b"in progress")
    dry = impl.repo.collect(NOTHING, dry_run=True)
    assert dry.uploads_removed == 1
    assert stale in impl.stored_keys()
    report = impl.repo.collect(NOTHING)
    assert report.uploads_removed == 1
    uploads = [key for key in impl.stored_keys() if key.startswith(impl.store_key("uploads/"))]
    assert uploads == [fresh]


def test_a_single_shard_collects_only_its_digests(impl: Impl) -> None:
    repo = impl.repo
    digests = put_many(repo, 40, "sharded")
    impl.age(AGE)
    first = digests[0].hex[0]
    in_shard = [d for d in digests if d.hex[0] == first]
    report = repo.collect(NOTHING, shards=[first])
    assert report.collected == len(in_shard) == report.scanned
    assert report.shards == [first]
    for digest in digests:
        assert stored(repo, digest) is (digest.hex[0] != first)
    for bad in (["g"], ["a", "ab"], ["a", "a"], [""]):
        with pytest.raises(InvalidArgumentError):
            repo.collect(NOTHING, shards=bad)


def test_a_second_collection_of_the_same_shards_is_refused(impl: Impl) -> None:
    # A live lease written by another collection of shard 3 (as collections/ holds them).
    lease = impl.write_key("collections/0000000000000000", b'{"shards": ["3"]}')
    with pytest.raises(ConflictError):
        impl.repo.collect(NOTHING, shards=["3", "4"])
    with pytest.raises(ConflictError):
        impl.repo.collect(NOTHING)  # all shards, 3 among them
    impl.repo.collect(NOTHING, shards=["5"], dry_run=True)
    impl.repo.collect(NOTHING, shards=["5"])
    assert impl.stored_keys() == [lease]  # ours removed, theirs left


def test_content_refreshed_while_a_collection_runs_is_kept_for_grace_less_refresh_window(
    impl: Impl,
) -> None:
    """The guarantee counts from when the write returns, even when the writer had to
    wait: content found old while a collection holds a lease is refreshed, then waited
    on for ``settle`` (a delete chosen before the refresh may still land), and must then
    outlive every collection that starts less than ``grace - refresh_window`` later."""
    settle, grace = timedelta(seconds=3), timedelta(seconds=5, milliseconds=500)
    repo = impl.make(refresh_window=timedelta(milliseconds=200), settle=settle, grace=grace)
    found = repo.put(b"found old while a collection runs")
    unfound = repo.put(b"found by no writer")
    impl.age(grace.total_seconds() + 2)  # old enough for any collection to choose
    # Another collection's live lease, on a shard neither object is in: the writer must
    # wait; ours (every other shard) runs beside it.
    busy = next(h for h in "0123456789abcdef" if h not in (found.hex[0], unfound.hex[0]))
    impl.write_key("collections/0000000000000000", f'{{"shards": ["{busy}"]}}'.encode())
    assert repo.put(b"found old while a collection runs") == found  # refreshes, then waits
    # Well within grace - refresh_window (5.3 s) of the return; past grace after the
    # refresh, on the store's clock, with a second for each whole-second time.
    impl.age(4.8)
    shards = [h for h in "0123456789abcdef" if h != busy]
    report = repo.collect(NOTHING, shards=shards, keep_keys=True)
    assert report.collected_keys == [impl.key(unfound)]
    assert stored(repo, found)


def test_content_a_writer_finds_stored_survives_the_next_collection(
    impl: Impl, tmp_path: Path
) -> None:
    """The guarantee: once a write returns, the object stays, however old it was when the
    writer found it stored. Every write path, each with content of its own.

    (Not ``write_to``: its target is dialed from a URL, with the default windows, which
    are not this collector's short ones.)
    """
    repo, source = impl.repo, impl.sibling()
    ways = ["put", "put stream", "put_file", "put_files", "read_from"]
    content = {how: f"found stored by {how}".encode() for how in ways}
    for data in content.values():
        repo.put(data)
    source.repo.put(content["read_from"])
    unfound = repo.put(b"found by no writer")
    impl.age(AGE)  # all old enough to collect
    (tmp_path / "found").write_bytes(content["put_files"])

    def write(how: str, data: bytes) -> None:
        digest = Digest.of(data)
        if how == "put":
            assert repo.put(data) == digest
        elif how == "put stream":
            assert repo.put(io.BytesIO(data)) == digest
        elif how == "put_file":
            repo.put_file(File(digest, len(data)), data)
        elif how == "put_files":
            assert repo.put_files([tmp_path / "found"]) == [File(digest, len(data))]
        else:
            repo.read_from(digest, source.repo.url)

    for how, data in content.items():
        write(how, data)
    report = repo.collect(NOTHING, keep_keys=True)
    assert report.collected_keys == [impl.key(unfound)]
    for how, data in content.items():
        assert stored(repo, Digest.of(data)), how
