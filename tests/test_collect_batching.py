"""Collection's deletes: a shard's garbage gathered across its pages into DeleteObjects of
up to 1,000 keys, each sent within the window of the oldest listing it rests on.

The requests are counted on the repository's client (``RequestLog`` and the parameters
of each LIST), never timed. Pages are made small (``Collector.list_page_size``), so that
a few hundred objects span several pages a shard.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from devkit.localserver import LocalS3
from s3repo_core import Digest, FileRepository, S3Repository, set_client, shard_names
from s3repo_core._collect import DELETE_BATCH, Collector, ListPacer
from s3repo_core.liveset import ExactLiveset

from requests_log import RequestLog

#: Past the default grace (24 h), with a second each for whole-second times.
PAST_GRACE = timedelta(hours=24, seconds=5).total_seconds()
DIGEST_SHARDS = [name for name in shard_names() if name not in ("other", "uploads")]


def put_all(server: LocalS3, bucket: str, bodies: list[bytes]) -> list[str]:
    """Store each body under ``c/`` behind the repository's back, in parallel; the keys."""
    client = server.client(max_pool_connections=16)
    keys = [f"c/objects/{Digest.of(body)}" for body in bodies]

    def put(key: str, body: bytes) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=body)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, keys, bodies))
    return keys


def stored(server: LocalS3, bucket: str, prefix: str) -> list[str]:
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


class Listings:
    """The prefix of every LIST a client sends (what RequestLog counts, by prefix)."""

    def __init__(self, client: Any) -> None:
        self.prefixes: list[str] = []
        client.meta.events.register("before-parameter-build.s3.ListObjectsV2", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.prefixes.append(params.get("Prefix", ""))

    def under(self, prefix: str) -> int:
        return sum(1 for listed in self.prefixes if listed.startswith(prefix))


@pytest.fixture
def bucket(moto_server: LocalS3) -> Any:
    """A fresh bucket on moto with its client set for s3repo; yields (name, client)."""
    name = moto_server.create_bucket()
    client = moto_server.client()
    set_client(client, bucket=name)
    yield name, client
    set_client(None, bucket=name)


def test_a_shard_is_deleted_across_its_pages_with_no_listing_twice(
    moto_server: LocalS3, bucket: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half of 320 objects are garbage, about 4 pages a shard: one DeleteObjects a shard,
    and the objects listed once (as a dry run lists them), none looked at again."""
    name, client = bucket
    monkeypatch.setattr(Collector, "list_page_size", 6)
    bodies = [b"batched-%d" % i for i in range(320)]
    put_all(moto_server, name, bodies)
    digests = [Digest.of(body) for body in bodies]
    live, dead = digests[::2], digests[1::2]
    moto_server.let_time_pass(PAST_GRACE)
    repo = S3Repository(name, "c")
    log, listings = RequestLog(client), Listings(client)

    dry = repo.collect(ExactLiveset(live), dry_run=True, keep_keys=True)
    assert dry.collected == len(dead) and log.calls["DeleteObjects"] == 0
    listed_once = listings.under("c/objects/")  # the listing: every page of every shard
    log.reset()
    listings.prefixes.clear()

    report = repo.collect(ExactLiveset(live), keep_keys=True)
    assert sorted(report.collected_keys or []) == sorted(dry.collected_keys or [])
    assert (report.scanned, report.live, report.collected) == (len(digests), len(live), len(dead))
    assert stored(moto_server, name, "c/objects/") == sorted(f"c/objects/{d}" for d in live)
    # One DeleteObjects per shard, not per page (about four pages each hold garbage).
    assert log.calls["DeleteObjects"] <= math.ceil(len(dead) / DELETE_BATCH) + len(DIGEST_SHARDS)
    # No key looked at again: the real run lists objects exactly as the dry run did.
    assert listings.under("c/objects/") == listed_once
    assert log.calls["HeadObject"] == 0


def test_a_shard_with_more_garbage_than_one_request_takes_is_deleted_in_full_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,100 dead objects in one shard, over 22 pages: 1,000 + 1,000 + 100 keys (a file
    repository, to store that many quickly; the deletes are counted at its store)."""
    monkeypatch.setattr(Collector, "list_page_size", 100)
    repo = FileRepository(tmp_path / "repo", create=True)
    objects = tmp_path / "repo" / "objects"
    objects.mkdir()
    dead = [f"objects/sha256:3{i:063x}" for i in range(2100)]
    live = [Digest.parse(f"sha256:3{i:063x}") for i in range(5000, 5100)]
    for key in dead + [f"objects/{d}" for d in live]:
        (tmp_path / "repo" / key).write_bytes(b"x")
    for path in objects.iterdir():
        os.utime(path, (1_000_000_000, 1_000_000_000))  # 2001: long past grace
    batches: list[list[str]] = []
    delete_many = repo.store.delete_many

    def counted(keys: Any) -> dict[str, tuple[str, str]]:
        batches.append(list(keys))
        return delete_many(keys)

    monkeypatch.setattr(repo.store, "delete_many", counted)
    report = repo.collect(ExactLiveset(live), shards=["3"])
    assert (report.scanned, report.collected, report.live) == (2200, 2100, 100)
    assert sorted(len(batch) for batch in batches) == [100, DELETE_BATCH, DELETE_BATCH]
    assert sorted(key for batch in batches for key in batch) == sorted(dead)
    assert sorted(p.name for p in objects.iterdir()) == sorted(str(d) for d in live)


def test_a_batch_held_while_a_slow_page_comes_is_looked_at_again_before_its_delete(
    moto_server: LocalS3, bucket: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shard's second LIST is held up by a writer (it refreshes a key of the first
    page, then waits out settle, as our lease is live): the batch that gathers both pages
    is then older than settle / 4 and must be listed again, which keeps the refreshed key.

    settle / 4 (1 s) leaves the first page's keys time to wait for the second page, as
    they do when LISTs are quick (see ``Collector._run_shard``).
    """
    name, client = bucket
    monkeypatch.setattr(Collector, "list_page_size", 4)
    monkeypatch.setattr(Collector, "parallel_listings", 1)  # shard 3's pages, one chain
    windows = {
        "refresh_window": timedelta(milliseconds=200),
        "settle": timedelta(seconds=4),
        "grace": timedelta(seconds=6, milliseconds=500),
    }
    bodies = [b for b in (b"slow-page-%d" % i for i in range(400)) if Digest.of(b).hex[0] == "3"]
    bodies = sorted(bodies[:11], key=lambda b: str(Digest.of(b)))  # pages of 4, 4, 3 keys
    keys = put_all(moto_server, name, bodies)
    moto_server.let_time_pass(windows["grace"].total_seconds() + 2.5)
    repo = S3Repository(name, "c", **windows)
    writer = S3Repository(name, "c", client=moto_server.client(), **windows)
    refreshed: list[str] = []

    def refresh_during_the_second_page(params: dict[str, Any], **_: Any) -> None:
        second = params.get("Prefix") == "c/objects/sha256:3" and "ContinuationToken" in params
        if second and not refreshed:
            refreshed.append(keys[0])
            assert writer.put(bodies[0]) == Digest.of(bodies[0])

    log, listings = RequestLog(client), Listings(client)
    client.meta.events.register(
        "before-parameter-build.s3.ListObjectsV2", refresh_during_the_second_page
    )
    report = repo.collect(ExactLiveset([]), shards=["3"])
    assert refreshed == [keys[0]]
    assert (report.collected, report.kept_recent) == (10, 1)
    assert stored(moto_server, name, "c/objects/") == [keys[0]]
    # The three pages, and the range of the stale batch (its 8 keys) once more.
    assert listings.under("c/objects/sha256:3") == 3 + 1
    assert log.calls["HeadObject"] == 0


def test_fewer_shards_are_listed_at_once_while_lists_take_long() -> None:
    """The pacer's rule, fed LIST times: one listing at first, one more after a round of
    quick LISTs, one fewer after a round of slow ones; deletes pending stop every LIST."""
    pacer = ListPacer(most=3, budget=1.0, most_pending=2)

    def round_of(seconds: float) -> int:
        for _ in range(pacer.width):
            pacer.took(seconds)
        return pacer.width

    assert pacer.width == 1
    assert [round_of(0.4) for _ in range(3)] == [2, 3, 3]  # under half the budget
    assert round_of(0.7) == 3  # within the budget: as it is
    assert [round_of(1.5) for _ in range(3)] == [2, 1, 1]
    assert pacer.wait_turn(placed=False, patience=0.0)  # the one place
    assert not pacer.wait_turn(placed=False, patience=0.0)  # no second listing
    assert pacer.wait_turn(placed=True, patience=0.0)  # the first lists on
    pacer.submitted()
    pacer.submitted()
    assert not pacer.wait_turn(placed=True, patience=0.0)  # room for no more deletes
    pacer.deleted()
    assert pacer.wait_turn(placed=True, patience=0.0)
    assert round_of(0.4) == 2 and pacer.wait_turn(placed=False, patience=0.0)
    assert not pacer.crowded()
    assert round_of(1.5) == 1 and pacer.crowded()  # the next of the two to list gives way
    pacer.leave()
    assert not pacer.crowded()
