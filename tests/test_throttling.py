"""Collection under S3 throttling: SlowDown is backed off from, counted, and sent again.

A fault proxy between boto3 and moto answers DeleteObjects with 503 SlowDown (and
nothing else); S3 applies no request it answers so, so the collector may resend it as
it was, and must lower its rate rather than give up.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from devkit.localserver import LocalS3
from s3repo_core import Digest, ExactLiveset, NotExistError, S3Repository, _collect
from s3repo_core._throttle import DeleteRate, backoff

from faultproxy import FaultProxy

GARBAGE = 200
DELETES = frozenset({"POST delete"})


def present(repo: S3Repository, digest: Digest) -> bool:
    try:
        repo.stat(digest)
    except NotExistError:
        return False
    return True


def throttled_repo(server: LocalS3, proxy: FaultProxy, bucket: str) -> S3Repository:
    return S3Repository(bucket, client=server.client(endpoint_url=proxy.endpoint_url))


def fill(server: LocalS3) -> tuple[str, S3Repository, list[Digest]]:
    bucket = server.create_bucket()
    repo = S3Repository(bucket, client=server.client())
    stored = [repo.put(f"garbage {n}".encode()) for n in range(GARBAGE)]
    server.let_time_pass(repo.grace.total_seconds() + 3)  # all older than any threshold
    return bucket, repo, stored


def test_deletes_answered_slowdown_are_sent_again_until_everything_is_collected(
    moto_server: LocalS3,
) -> None:
    bucket, repo, stored = fill(moto_server)
    keep = stored[0]
    with FaultProxy(moto_server.port, seed=3, rates={"503-before": 0.5}, kinds=DELETES) as proxy:
        report = throttled_repo(moto_server, proxy, bucket).collect(ExactLiveset([keep]))

    assert proxy.faults["503-before"] > 0
    assert report.throttled == proxy.faults["503-before"]
    assert (report.collected, report.live, report.errors) == (GARBAGE - 1, 1, [])
    assert [d for d in stored if present(repo, d)] == [keep]
    # Not applied, so not looked at again: every LIST was of the first pass (and leases).
    assert proxy.faults_by_kind["503-before", "POST delete"] == proxy.faults["503-before"]
    row = ("deletes throttled (SlowDown) and sent again", report.throttled, None)
    assert row in report.rows()


def test_a_shard_throttled_without_end_reports_its_keys_refused_and_deletes_nothing(
    moto_server: LocalS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_collect, "MAX_SLOWDOWNS", 2)
    bucket, repo, stored = fill(moto_server)
    with FaultProxy(moto_server.port, rates={"503-before": 1.0}, kinds=DELETES) as proxy:
        report = throttled_repo(moto_server, proxy, bucket).collect(
            ExactLiveset(), raise_on_errors=False
        )

    assert report.collected == 0 and report.failed
    assert {e.code for e in report.errors} == {"SlowDown"}
    assert len(report.errors) == GARBAGE
    assert all(present(repo, d) for d in stored)
    requests = proxy.kinds["POST delete"]
    assert report.throttled == requests and requests % 3 == 0  # each batch sent 3 times


def test_the_rate_halves_on_slowdown_and_grows_back_by_one_per_window() -> None:
    rate = DeleteRate(8)
    rate.slowed_down()
    rate.slowed_down()
    assert (rate.limit, rate.lowest, rate.throttled) == (2.0, 2, 2)
    for _ in range(2):
        rate.went_through()
    assert rate.limit == pytest.approx(2.9, abs=0.05)  # one window of two: about +1
    for _ in range(100):
        rate.went_through()
    assert rate.limit == 8.0  # never above the ceiling
    for _ in range(10):
        rate.slowed_down()
    assert rate.limit == 1.0  # never below one


def test_no_more_requests_are_in_flight_than_the_rate_allows() -> None:
    rate = DeleteRate(4)
    rate.slowed_down()  # 2 at once
    most = 0
    now = 0
    lock = threading.Lock()

    def send() -> None:
        nonlocal most, now
        with rate.slot():
            with lock:
                now += 1
                most = max(most, now)
            time.sleep(0.02)
            with lock:
                now -= 1

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 2


def test_backoff_doubles_with_jitter_up_to_five_seconds() -> None:
    rng = random.Random(1)
    waits = [backoff(n, rng) for n in range(1, 12)]
    assert 0.05 <= waits[0] <= 0.1 and 0.1 <= waits[1] <= 0.2
    assert all(2.5 <= w <= 5.0 for w in waits[7:])
