"""Garbage collection on the real servers: what it keeps, what it deletes, and when."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devkit.localserver import LocalS3
from s3repo_core import (
    CollectionFailedError,
    CollectReport,
    ConflictError,
    Digest,
    InvalidArgumentError,
    NotExistError,
    S3Repository,
    set_client,
)
from s3repo_core._collect import Collector
from s3repo_core.liveset import BloomLiveset, ExactLiveset

from refusing_proxy import RefusingProxy
from requests_log import RequestLog

# Short windows so that tests can age objects past the grace period in seconds.
WINDOWS = {
    "refresh_window": timedelta(milliseconds=200),
    "settle": timedelta(milliseconds=400),
    "grace": timedelta(seconds=2, milliseconds=700),
}
# Past grace, plus a second each for whole-second Last-Modified and Date: on the server's
# clock, which let_time_pass moves forward where it can (moto) and waits for elsewhere.
AGE = 5.6


def short_repo(bucket: str, prefix: str = "c", **options: Any) -> S3Repository:
    return S3Repository(bucket, prefix, **{**WINDOWS, **options})


def keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def put_many(repo: S3Repository, n: int, tag: str) -> list[Digest]:
    return [repo.put(f"{tag}-{i}".encode()) for i in range(n)]


def test_collect_keeps_the_liveset_and_deletes_the_rest(
    s3server: LocalS3, bucket: str, client: Any
) -> None:
    repo = short_repo(bucket)
    live = put_many(repo, 6, "live")
    dead = put_many(repo, 5, "dead")
    s3server.let_time_pass(AGE)
    report = repo.collect(ExactLiveset(live))
    assert (report.scanned, report.live, report.collected) == (11, 6, 5)
    assert report.bytes_collected == sum(len(f"dead-{i}") for i in range(5))
    assert report.errors == [] and not report.dry_run
    for digest in live:
        assert repo.stat(digest).digest == digest
    for digest in dead:
        with pytest.raises(NotExistError):
            repo.stat(digest)
    assert keys(client, bucket, "c/collections/") == []  # the lease is gone


def test_objects_written_after_the_threshold_are_kept(s3server: LocalS3, bucket: str) -> None:
    repo = short_repo(bucket)
    put_many(repo, 3, "old")
    s3server.let_time_pass(AGE)
    new = put_many(repo, 4, "new")
    report = repo.collect(ExactLiveset([]))
    assert (report.collected, report.kept_recent) == (3, 4)
    assert all(repo.stat(d) for d in new)
    # An explicit older threshold keeps more.
    report = repo.collect(ExactLiveset([]), threshold=datetime.now(UTC) - timedelta(days=1))
    assert report.collected == 0


def test_a_threshold_newer_than_the_grace_period_is_refused(bucket: str) -> None:
    repo = short_repo(bucket)
    digest = repo.put(b"young")
    with pytest.raises(InvalidArgumentError, match="grace"):
        repo.collect(ExactLiveset([]), threshold=datetime.now(UTC))
    with pytest.raises(InvalidArgumentError, match="timezone"):
        repo.collect(ExactLiveset([]), threshold=datetime.now() - timedelta(days=1))
    assert repo.stat(digest).size == 5


def test_a_dry_run_reports_exactly_what_a_real_run_deletes(s3server: LocalS3, bucket: str) -> None:
    repo = short_repo(bucket)
    live = put_many(repo, 20, "live")
    put_many(repo, 30, "dead")
    s3server.let_time_pass(AGE)
    dry = repo.collect(ExactLiveset(live), dry_run=True, keep_keys=True)
    assert dry.dry_run and dry.collected == 30
    assert repo.collect(ExactLiveset(live), dry_run=True).collected == 30  # deleted nothing
    real = repo.collect(ExactLiveset(live), keep_keys=True)
    assert sorted(dry.collected_keys or []) == sorted(real.collected_keys or [])
    assert (dry.scanned, dry.live, dry.collected, dry.bytes_collected) == (
        real.scanned,
        real.live,
        real.collected,
        real.bytes_collected,
    )


def test_a_batch_held_past_a_quarter_of_settle_is_listed_again_before_deleting(
    s3server: LocalS3, bucket: str, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = short_repo(bucket)
    digests = put_many(repo, 24, "held")
    s3server.let_time_pass(AGE)
    monkeypatch.setattr(Collector, "pause_before_delete", 1.5)  # settle / 4 is 0.1 s
    log = RequestLog(client)  # the collection's client; the writer below has its own
    writer = short_repo(bucket, client=s3server.client())
    done: list[CollectReport] = []
    collection = threading.Thread(target=lambda: done.append(repo.collect(ExactLiveset([]))))
    collection.start()
    time.sleep(0.8)  # listed and classified: every batch is held before its delete
    # First the quick delete: the put may then wait out settle while batches resume.
    client.delete_object(Bucket=bucket, Key=f"c/objects/{digests[1]}")  # someone else's
    assert writer.put(b"held-0") == digests[0]  # found old, so refreshed: now recent
    collection.join()
    assert log.calls["HeadObject"] == 0  # a LIST per held batch, not a HEAD per key
    # Per held batch: its range listed again, and touch records read again (both are
    # older than settle / 4 by the time it is sent).
    assert log.calls["ListObjectsV2"] <= 3 * (16 + 3) + 4
    (report,) = done
    assert (report.collected, report.kept_recent) == (22, 1)  # not the one it did not delete
    assert repo.stat(digests[0]).size == len(b"held-0")
    assert keys(client, bucket, "c/objects/") == [f"c/objects/{digests[0]}"]


def test_more_than_a_thousand_deletions_in_batches(
    s3server: LocalS3, bucket: str, client: Any
) -> None:
    repo = short_repo(bucket)
    dead_count, live_count = 1150, 100  # more deletions than one DeleteObjects takes

    def put(j: int) -> None:
        data = f"bulk-{j}".encode()
        client.put_object(Bucket=bucket, Key=f"c/objects/{Digest.of(data)}", Body=data)

    with ThreadPoolExecutor(8) as pool:
        for i in range(0, dead_count + live_count, 100):
            client.put_object(Bucket=bucket, Key="c/objects/placeholder", Body=b"")
            list(pool.map(put, range(i, min(i + 100, dead_count + live_count))))
    client.delete_object(Bucket=bucket, Key="c/objects/placeholder")
    dead = [Digest.of(f"bulk-{j}".encode()) for j in range(dead_count)]
    keep = [Digest.of(f"bulk-{j}".encode()) for j in range(dead_count, dead_count + live_count)]
    s3server.let_time_pass(AGE)
    batches: list[list[str]] = []  # the keys of each DeleteObjects the collection sends
    client.meta.events.register(
        "before-parameter-build.s3.DeleteObjects",
        lambda params, **_: batches.append([o["Key"] for o in params["Delete"]["Objects"]]),
    )
    report = repo.collect(ExactLiveset(keep))
    assert (report.scanned, report.live, report.collected) == (1250, 100, 1150)
    assert len(keys(client, bucket, "c/objects/")) == 100
    # A batch per shard: each shard's ~72 dead keys fill one DeleteObjects.
    shards = {d.hex[0] for d in dead}
    assert len(batches) == len(shards) == 16
    assert all(len(batch) <= 1000 for batch in batches)  # what S3 takes in one request
    assert sorted(key for batch in batches for key in batch) == sorted(
        f"c/objects/{d}" for d in dead
    )
    assert all(len({key.split(":")[1][0] for key in batch}) == 1 for batch in batches)


def test_keys_that_are_not_digests_are_reported_and_left_alone(
    s3server: LocalS3, bucket: str, client: Any
) -> None:
    repo = short_repo(bucket)
    digest = repo.put(b"valid")
    odd = [
        "c/objects/README",
        "c/objects/sha256:abc",
        f"c/objects/sha256:{'A' * 64}",
        f"c/objects/sha512:{'a' * 64}",
        f"c/objects/sha256:{'f' * 64}.bak",
        f"c/objects/sha256:{'0' * 63}",
    ]
    for key in odd:
        client.put_object(Bucket=bucket, Key=key, Body=b"?")
    s3server.let_time_pass(AGE)
    report = repo.collect(ExactLiveset([]))
    assert sorted(report.invalid_keys) == sorted(odd)
    assert report.invalid_count == len(odd) and report.collected == 1
    assert keys(client, bucket, "c/objects/") == sorted(odd)
    with pytest.raises(NotExistError):
        repo.stat(digest)


def test_stale_uploads_and_multipart_uploads_are_swept(
    s3server: LocalS3, bucket: str, client: Any
) -> None:
    repo = short_repo(bucket)
    times_known = "multipart-upload-times" not in s3server.lacks
    client.put_object(Bucket=bucket, Key="c/uploads/0123456789abcdef", Body=b"left over")
    stale = client.create_multipart_upload(Bucket=bucket, Key="c/uploads/fedcba9876543210")
    other = client.create_multipart_upload(Bucket=bucket, Key="elsewhere/x")
    s3server.let_time_pass(AGE)
    client.put_object(Bucket=bucket, Key="c/uploads/aaaaaaaaaaaaaaaa", Body=b"in progress")
    fresh = client.create_multipart_upload(Bucket=bucket, Key="c/uploads/bbbbbbbbbbbbbbbb")
    aborted = 1 if times_known else 2  # moto dates every multipart upload in 2010
    dry = repo.collect(ExactLiveset([]), dry_run=True)
    assert (dry.uploads_removed, dry.multipart_aborted) == (1, aborted)
    report = repo.collect(ExactLiveset([]))
    assert (report.uploads_removed, report.multipart_aborted) == (1, aborted)
    assert keys(client, bucket, "c/uploads/") == ["c/uploads/aaaaaaaaaaaaaaaa"]
    open_ids = {u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket)["Uploads"]}
    assert stale["UploadId"] not in open_ids
    assert other["UploadId"] in open_ids  # another prefix's upload is not ours
    assert (fresh["UploadId"] in open_ids) is times_known


def test_a_single_shard_collects_only_its_digests(s3server: LocalS3, bucket: str) -> None:
    repo = short_repo(bucket)
    digests = put_many(repo, 40, "sharded")
    s3server.let_time_pass(AGE)
    first = digests[0].hex[0]
    report = repo.collect(ExactLiveset([]), shards=[first])
    in_shard = [d for d in digests if d.hex[0] == first]
    assert report.collected == len(in_shard) == report.scanned
    for digest in digests:
        if digest.hex[0] == first:
            with pytest.raises(NotExistError):
                repo.stat(digest)
        else:
            assert repo.stat(digest).digest == digest
    with pytest.raises(InvalidArgumentError):
        repo.collect(ExactLiveset([]), shards=["g"])
    with pytest.raises(InvalidArgumentError):
        repo.collect(ExactLiveset([]), shards=["a", "ab"])


def test_a_second_collection_of_the_same_shards_is_refused(bucket: str, client: Any) -> None:
    repo = short_repo(bucket)
    client.put_object(
        Bucket=bucket, Key="c/collections/0000000000000000", Body=b'{"shards": ["3"]}'
    )
    with pytest.raises(ConflictError):
        repo.collect(ExactLiveset([]), shards=["3", "4"])
    repo.collect(ExactLiveset([]), shards=["5"], dry_run=True)
    repo.collect(ExactLiveset([]), shards=["5"])
    assert keys(client, bucket, "c/collections/") == ["c/collections/0000000000000000"]


def test_the_bloom_liveset_never_deletes_a_live_object(s3server: LocalS3, bucket: str) -> None:
    repo = short_repo(bucket)
    digests = put_many(repo, 120, "bloom")
    s3server.let_time_pass(AGE)
    import random

    rng = random.Random(7)
    for round_ in range(12):
        live = rng.sample(digests, rng.randrange(1, 60))
        bloom = BloomLiveset.from_digests(live, fp_rate=0.2)
        report = repo.collect(bloom, dry_run=True, keep_keys=True)
        doomed = {key.rsplit("/", 1)[1] for key in report.collected_keys or []}
        assert not doomed & {str(d) for d in live}, round_
        assert report.live >= len(live)
    live = digests[:50]
    repo.collect(BloomLiveset.from_digests(live, fp_rate=0.2))
    assert all(repo.stat(d) for d in live)


def test_delete_errors_reported_per_key_fail_the_collection(moto_server: LocalS3) -> None:
    bucket = moto_server.create_bucket()
    refused = set()

    def refuse(key: str) -> bool:
        return key in refused

    with RefusingProxy(moto_server.port, refuse) as proxy:
        client = moto_server.client(endpoint_url=proxy.endpoint_url)
        set_client(client, bucket=bucket)
        try:
            repo = short_repo(bucket)
            digests = put_many(repo, 10, "refused")
            refused.update(f"c/objects/{d}" for d in digests[:3])
            time.sleep(AGE)  # real time: the proxy answers with its own clock's Date
            with pytest.raises(CollectionFailedError) as info:
                repo.collect(ExactLiveset([]))
            report = info.value.report
            assert sorted(f.key for f in report.errors) == sorted(refused)
            assert {f.code for f in report.errors} == {"AccessDenied"}
            assert report.collected == 7  # failures are not counted as collected
            assert sorted(keys(client, bucket, "c/objects/")) == sorted(refused)
            assert len(proxy.refused) == 3 * 4  # retried, by key, a bounded number of times
            quiet = repo.collect(ExactLiveset([]), raise_on_errors=False)
            assert len(quiet.errors) == 3 and quiet.failed
        finally:
            set_client(None, bucket=bucket)


def test_a_collection_of_one_shard_lists_its_sixteen_sub_prefixes_side_by_side(
    moto_server: LocalS3,
) -> None:
    """A shard's pages come one after another; split, its listing is 16 chains, not one."""
    from faultproxy import FaultProxy

    bucket = moto_server.create_bucket()
    seeded = S3Repository(bucket, client=moto_server.client())
    for n in range(60):
        seeded.put(f"sub-prefix {n}".encode())
    with FaultProxy(moto_server.port) as proxy:
        repo = S3Repository(bucket, client=moto_server.client(endpoint_url=proxy.endpoint_url))
        report = repo.collect(ExactLiveset([]), shards=["5"], dry_run=True)
    listed = {
        entry[2].split("prefix=", 1)[1].split("&", 1)[0].replace("%3A", ":").replace("%2F", "/")
        for entry in proxy.history
        if "list-type=2" in entry[2] and "prefix=objects" in entry[2]
    }
    assert listed == {f"objects/sha256:5{h}" for h in "0123456789abcdef"}
    assert report.scanned == sum(
        1 for n in range(60) if str(Digest.of(f"sub-prefix {n}".encode())).startswith("sha256:5")
    )
