"""Collection against an S3 Inventory report instead of a LIST of every shard.

The report is written in AWS's format into the test bucket (``inventory_kit``). What
must hold: an inventory only proposes; every candidate is looked at again before its
delete, so what changed since the report (re-stored, deleted, written after it) is
never lost nor miscounted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from inventory_kit import listing, write_inventory

from devkit.localserver import LocalS3
from s3repo_core import (
    Digest,
    ExactLiveset,
    FileRepository,
    IntegrityError,
    InvalidArgumentError,
    NotSupportedError,
    S3Repository,
    latest_inventory,
    read_inventory,
)
from s3repo_core import inventory as inventory_module

from faultproxy import FaultProxy

GRACE = timedelta(seconds=5)
WINDOWS = {"grace": GRACE, "refresh_window": timedelta(seconds=1), "settle": timedelta(seconds=1)}


World = tuple[S3Repository, list[Digest]]


@pytest.fixture
def world(moto_server: LocalS3) -> Iterator[World]:
    bucket = moto_server.create_bucket()
    repo = S3Repository(bucket, client=moto_server.client(), **WINDOWS)
    stored = [repo.put(f"object {n}".encode()) for n in range(40)]
    moto_server.let_time_pass(GRACE.total_seconds() + 3)
    yield repo, stored


def present(repo: S3Repository, digest: Digest) -> bool:
    return repo.layout.object_key(digest) in {
        row["Key"] for row in listing(repo.client, repo.bucket)
    }


@pytest.mark.parametrize("file_format", ["CSV", "Parquet"])
def test_an_inventory_proposes_and_each_candidate_is_looked_at_again_before_its_delete(
    world: World, moto_server: LocalS3, file_format: str
) -> None:
    repo, stored = world
    live, restored, gone, garbage = stored[:10], stored[10], stored[11], stored[12:]
    report_at = write_inventory(
        repo.client,
        repo.bucket,
        repo.bucket,
        listing(repo.client, repo.bucket),
        file_format=file_format,
    )
    # Since the report: one garbage object deleted and stored again (new by its time),
    # one deleted for good, and one new object written (not in the report at all).
    for digest in (restored, gone):
        repo.client.delete_object(Bucket=repo.bucket, Key=repo.layout.object_key(digest))
    repo.put(f"object {10}".encode())
    newer = repo.put(b"written after the report")
    inventory = read_inventory(report_at, client=repo.client)
    assert (inventory.source_bucket, inventory.file_format) == (repo.bucket, file_format)

    with FaultProxy(moto_server.port) as proxy:
        proxied = S3Repository(
            repo.bucket, client=moto_server.client(endpoint_url=proxy.endpoint_url), **WINDOWS
        )
        report = proxied.collect(ExactLiveset(live), inventory=inventory)

    assert report.scanned == 40  # what the report listed
    assert report.live == 10
    assert report.kept_recent == 1  # stored again since: looked at again, kept
    assert report.collected == len(garbage)  # not the one deleted since
    assert [d for d in stored if present(repo, d)] == [*live, restored]
    assert present(repo, newer)
    # No LIST walked a shard from its start: each looked at one page's range again.
    lists = [entry for entry in proxy.history if entry[1] == "GET" and "list-type=2" in entry[2]]
    decoded = [e[2].replace("%2F", "/").replace("%3A", ":") for e in lists]
    object_lists = [path for path in decoded if "prefix=objects/sha256" in path]
    assert object_lists and all("start-after=" in path for path in object_lists)


def test_a_dry_run_counts_what_the_inventory_proposes_and_deletes_nothing(
    world: World,
) -> None:
    repo, stored = world
    at = write_inventory(repo.client, repo.bucket, repo.bucket, listing(repo.client, repo.bucket))
    report = repo.collect(
        ExactLiveset(stored[:5]), inventory=read_inventory(at, client=repo.client), dry_run=True
    )
    assert (report.scanned, report.live, report.collected) == (40, 5, 35)
    assert all(present(repo, d) for d in stored)


def test_old_versions_and_delete_markers_in_a_report_are_not_objects(
    world: World,
) -> None:
    repo, stored = world
    rows = listing(repo.client, repo.bucket)
    ghost = Digest.of(b"an old version")
    when = rows[0]["LastModified"]
    rows.append(
        {"Key": repo.layout.object_key(ghost), "Size": 1, "LastModified": when, "IsLatest": False}
    )
    marker = {"Key": repo.layout.object_key(Digest.of(b"deleted")), "Size": 0, "LastModified": when}
    rows.append({**marker, "IsDeleteMarker": True})
    at = write_inventory(repo.client, repo.bucket, repo.bucket, rows)
    report = repo.collect(
        ExactLiveset(stored), inventory=read_inventory(at, client=repo.client), dry_run=True
    )
    assert (report.scanned, report.collected) == (40, 0)


def test_a_report_that_fails_its_md5_or_is_of_another_bucket_deletes_nothing(
    world: World, moto_server: LocalS3, tmp_path: Path
) -> None:
    repo, stored = world
    at = write_inventory(repo.client, repo.bucket, repo.bucket, listing(repo.client, repo.bucket))
    inventory = read_inventory(at, client=repo.client)
    damaged = inventory.files[0]
    repo.client.put_object(Bucket=repo.bucket, Key=damaged.key, Body=b"not what was listed")
    with pytest.raises(IntegrityError, match="does not match the MD5"):
        repo.collect(ExactLiveset(), inventory=inventory)
    assert all(present(repo, d) for d in stored)

    other = moto_server.create_bucket()
    elsewhere = S3Repository(other, client=moto_server.client())
    with pytest.raises(InvalidArgumentError, match=f"lists bucket '{repo.bucket}'"):
        elsewhere.collect(ExactLiveset(), inventory=inventory)
    with pytest.raises(NotSupportedError, match="not in S3"):
        FileRepository(tmp_path).collect(ExactLiveset(), inventory=inventory)


def test_the_newest_report_under_a_prefix_is_found(
    world: World,
) -> None:
    repo, _ = world
    rows = listing(repo.client, repo.bucket)
    prefix = f"s3://{repo.bucket}/inventory/{repo.bucket}/daily/"
    assert latest_inventory(prefix, client=repo.client) is None
    first = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    older = write_inventory(repo.client, repo.bucket, repo.bucket, rows, at=first)
    second = first + timedelta(days=1)
    newer = write_inventory(repo.client, repo.bucket, repo.bucket, rows, at=second)
    assert older != newer
    assert latest_inventory(prefix, client=repo.client) == newer
    assert read_inventory(newer, client=repo.client).created_at == second


def test_what_is_not_an_inventory_manifest_is_refused(
    world: World,
) -> None:
    repo, _ = world
    repo.client.put_object(Bucket=repo.bucket, Key="x/manifest.json", Body=b'{"files": []}')
    with pytest.raises(InvalidArgumentError, match="lacks a valid"):
        read_inventory(f"s3://{repo.bucket}/x/manifest.json", client=repo.client)
    body = b'{"fileFormat": "XML", "creationTimestamp": "1", "sourceBucket": "b", "files": []}'
    repo.client.put_object(Bucket=repo.bucket, Key="y/manifest.json", Body=body)
    with pytest.raises(NotSupportedError, match="'XML'"):
        read_inventory(f"s3://{repo.bucket}/y/manifest.json", client=repo.client)


def test_a_delete_batch_gathers_from_at_most_two_pages_of_a_report(
    moto_server: LocalS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its second look lists the whole range it spans, which may hold few candidates."""
    monkeypatch.setattr(inventory_module, "_PAGE", 5)
    bucket = moto_server.create_bucket()
    repo = S3Repository(bucket, client=moto_server.client(), **WINDOWS)
    stored = [repo.put(f"many {n}".encode()) for n in range(160)]
    moto_server.let_time_pass(GRACE.total_seconds() + 3)
    at = write_inventory(repo.client, repo.bucket, repo.bucket, listing(repo.client, bucket))
    pages = sum(-(-sum(1 for d in stored if d.hex[0] == h) // 5) for h in "0123456789abcdef")

    with FaultProxy(moto_server.port) as proxy:
        proxied = S3Repository(
            bucket, client=moto_server.client(endpoint_url=proxy.endpoint_url), **WINDOWS
        )
        report = proxied.collect(ExactLiveset(), inventory=read_inventory(at, client=repo.client))

    assert report.collected == 160
    assert proxy.kinds["POST delete"] >= pages / 2 > 16  # not one batch per shard
