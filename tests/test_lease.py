"""Collection leases: released on failure, renewed while a collection runs, short-lived.

The rule (``s3repo_core._lease``): a lease not renewed for ``ttl`` is dead; a collector
renews its lease every ``heartbeat`` and sends a delete only while the lease is sure to
outlive it by ``settle``.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from s3repo_core import ConflictError, Digest, S3Repository, UnavailableError
from s3repo_core._bucket import S3Bucket
from s3repo_core._lease import HeldLease, LeaseTimes, any_live_lease
from s3repo_core.liveset import ExactLiveset

SETTLE = timedelta(milliseconds=400)
HEARTBEAT = timedelta(milliseconds=500)
WINDOWS: dict[str, Any] = {
    "refresh_window": timedelta(milliseconds=200),
    "settle": SETTLE,
    "grace": timedelta(seconds=2, milliseconds=700),
    "heartbeat": HEARTBEAT,
}
TTL = LeaseTimes.floor(SETTLE, HEARTBEAT)  # 3.4 s


def leases(client: Any, bucket: str) -> list[dict[str, Any]]:
    return client.list_objects_v2(Bucket=bucket, Prefix="c/collections/").get("Contents", [])


class FailingLiveset:
    """A liveset whose lookups fail: the collection fails after taking its lease."""

    def __contains__(self, digest: Digest) -> bool:
        raise RuntimeError("the liveset broke")

    def contains_many(self, raw: np.ndarray) -> np.ndarray:
        raise RuntimeError("the liveset broke")


class SlowLiveset(ExactLiveset):
    """An empty liveset that takes ``seconds`` over its first lookup."""

    def __init__(self, seconds: float) -> None:
        super().__init__([])
        self.seconds = seconds
        self.started = threading.Event()

    def contains_many(self, raw: np.ndarray) -> np.ndarray:
        if not self.started.is_set():
            self.started.set()
            time.sleep(self.seconds)
        return super().contains_many(raw)


def test_lease_times_follow_settle_and_the_heartbeat() -> None:
    default = LeaseTimes.derive(timedelta(seconds=60))
    assert default.heartbeat == timedelta(seconds=30)
    assert default.ttl == timedelta(seconds=60 + 4 * 30 + 2)  # minutes, not hours
    short = LeaseTimes.derive(SETTLE)
    assert short.heartbeat == timedelta(seconds=1)
    assert short.ttl < timedelta(seconds=7)
    assert LeaseTimes.derive(SETTLE, HEARTBEAT, TTL).ttl == TTL
    with pytest.raises(ValueError, match="shorter than settle"):
        LeaseTimes.derive(SETTLE, HEARTBEAT, TTL - timedelta(milliseconds=1))
    with pytest.raises(ValueError, match="shorter than settle"):
        S3Repository("bucket", settle=SETTLE, heartbeat=HEARTBEAT, lease_ttl=timedelta(seconds=1))


def test_a_failed_collection_removes_its_lease(bucket: str, client: Any) -> None:
    repo = S3Repository(bucket, "c", **WINDOWS)
    repo.put(b"something to look up")
    with pytest.raises(RuntimeError, match="the liveset broke"):
        repo.collect(FailingLiveset())  # type: ignore[arg-type]
    assert leases(client, bucket) == []
    repo.collect(ExactLiveset([]), dry_run=True)
    repo.collect(ExactLiveset([]))  # not blocked by the failed one


def test_a_collection_longer_than_the_ttl_keeps_its_lease_live(bucket: str, client: Any) -> None:
    repo = S3Repository(bucket, "c", lease_ttl=TTL, **WINDOWS)
    repo.put(b"one object to classify")
    liveset = SlowLiveset(TTL.total_seconds() * 2)
    done = threading.Event()
    seen: list[bool] = []

    def collect() -> None:
        try:
            repo.collect(liveset)
        finally:
            done.set()

    worker = threading.Thread(target=collect)
    worker.start()
    try:
        assert liveset.started.wait(30)
        time.sleep(TTL.total_seconds() * 1.5)  # past the TTL of the first write
        while not done.is_set() and len(seen) < 5:
            now = repo.server_now()
            seen.append(any_live_lease(repo.store, repo.layout, now, repo.lease_times))
            time.sleep(0.2)
    finally:
        worker.join(60)
    assert seen and all(seen), "a running collection's lease looked dead to writers"
    assert leases(client, bucket) == []


def test_a_dead_collectors_lease_blocks_for_at_most_its_ttl(bucket: str, client: Any) -> None:
    repo = S3Repository(bucket, "c", lease_ttl=TTL, **WINDOWS)
    # What a collector killed with SIGKILL leaves behind.
    client.put_object(Bucket=bucket, Key="c/collections/00000000000000aa", Body=b"{")
    started = time.monotonic()
    with pytest.raises(ConflictError, match="dies"):
        repo.collect(ExactLiveset([]))
    while True:
        try:
            repo.collect(ExactLiveset([]))
            break
        except ConflictError:
            assert time.monotonic() - started < TTL.total_seconds() + 3
            time.sleep(0.5)
    assert leases(client, bucket) == []  # the dead lease was removed


def test_a_lease_that_is_not_renewed_stops_deletes(bucket: str, client: Any) -> None:
    times = LeaseTimes.derive(SETTLE, HEARTBEAT, TTL)
    store = S3Bucket(bucket, client)
    lease = HeldLease(store, "c/collections/00000000000000bb", {"shards": []}, times)
    lease.write()  # no heartbeat started: as if every renewal failed
    lease.wait_live_for(SETTLE.total_seconds())  # fresh: deletes may go
    # Past the send + settle + 2 heartbeats, a delete could land after the lease died.
    time.sleep((SETTLE + 2 * HEARTBEAT).total_seconds() - SETTLE.total_seconds() + 0.1)
    with pytest.raises(UnavailableError, match="could not be renewed"):
        lease.wait_live_for(SETTLE.total_seconds())
    assert not lease.is_live_for(SETTLE.total_seconds())
    lease.release()
    assert leases(client, bucket) == []
