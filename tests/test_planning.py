"""Planning a collection: the liveset and the threshold, fixed once from the manifests.

Run on every S3 server (through the ``repo`` fixture); the repositories' manifests
live in the same bucket as their objects, as they do in deployments.
"""

from __future__ import annotations

import pickle
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from s3repo_core import (
    BloomLiveset,
    Digest,
    ExactLiveset,
    InvalidArgumentError,
    ManifestRow,
    NotExistError,
    PlannedCollection,
    S3Repository,
    UnavailableError,
    make_client,
    plan_collection,
    shard_names,
    suggested_shard_width,
    write_manifest,
)
from s3repo_core._client import using_client
from s3repo_core.manifest import ManifestInfo

DAY = timedelta(days=1)
#: Two manifests of different ages, as two producers would have written them.
OLDER = datetime(2025, 3, 1, 12, 0, 0, 654321, tzinfo=UTC)
NEWER = datetime(2025, 3, 2, 8, 30, 0, tzinfo=UTC)


def rows(*names: str) -> list[ManifestRow]:
    return [ManifestRow(Digest.of(name.encode()), len(name), f"job {name}") for name in names]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dead_default() -> Iterator[Any]:
    """A default client for an endpoint nobody listens on: code that falls back to the
    process-wide client instead of the one it was given fails at once."""
    dead = make_client(
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        region="us-east-1",
        access_key_id="nobody",
        secret_access_key="nothing",
        max_attempts=1,
        connect_timeout=1.0,
    )
    with using_client(dead):
        yield dead


@pytest.fixture
def manifests(repo: S3Repository) -> str:
    """Two manifests under one prefix; the location that names both."""
    prefix = f"s3://{repo.bucket}/manifests/"
    write_manifest(f"{prefix}a.parquet", rows("a", "b"), created_by="a", created_at=NEWER)
    write_manifest(f"{prefix}b.parquet", rows("b", "c", "d"), created_by="b", created_at=OLDER)
    return prefix


# -- what a plan holds ----------------------------------------------------------------------


def test_the_threshold_is_the_oldest_manifest_s_time_minus_the_grace_in_whole_seconds(
    repo: S3Repository, manifests: str
) -> None:
    before = datetime.now(UTC)

    plan = plan_collection(repo, [manifests])

    assert plan.oldest_manifest == OLDER
    assert plan.grace == repo.grace == DAY
    assert plan.threshold == datetime(2025, 2, 28, 12, 0, 0, tzinfo=UTC)  # not NEWER's
    assert plan.repository == repo.url
    assert before <= plan.planned_at <= datetime.now(UTC)


def test_the_liveset_is_the_union_and_each_manifest_is_described(
    repo: S3Repository, manifests: str
) -> None:
    plan = plan_collection(repo, [manifests])

    assert isinstance(plan.read_liveset(), ExactLiveset)
    for name in "abcd":
        assert Digest.of(name.encode()) in plan.read_liveset()
    assert Digest.of(b"e") not in plan.read_liveset()
    assert plan.live_rows == 5  # "b" is in both
    assert plan.manifests == (
        ManifestInfo(f"{manifests}a.parquet", 2, NEWER, "a"),
        ManifestInfo(f"{manifests}b.parquet", 3, OLDER, "b"),
    )
    assert plan.locations == (f"{manifests}a.parquet", f"{manifests}b.parquet")
    assert plan.shards == tuple(shard_names(1))
    assert "5 live rows from 2 manifests" in plan.summary()
    assert "modified after 2025-02-28T12:00:00+00:00" in plan.summary()


def test_a_longer_grace_moves_the_threshold_back(repo: S3Repository, manifests: str) -> None:
    plan = plan_collection(repo, [manifests], grace=3 * DAY)
    assert (plan.grace, plan.threshold) == (3 * DAY, datetime(2025, 2, 26, 12, tzinfo=UTC))


def test_a_bloom_liveset_and_wider_shards(repo: S3Repository, manifests: str) -> None:
    plan = plan_collection(repo, [manifests], liveset="bloom", fp_rate=0.001, shard_width=2)
    assert isinstance(plan.read_liveset(), BloomLiveset)
    assert all(Digest.of(name.encode()) in plan.read_liveset() for name in "abcd")
    assert plan.shards == tuple(shard_names(2))
    assert len(plan.shards) == 256 + 2


def test_the_plan_is_a_value_that_travels_to_other_processes(
    repo: S3Repository, manifests: str
) -> None:
    plan = plan_collection(repo, [manifests])
    again = pickle.loads(pickle.dumps(plan))
    assert isinstance(again, PlannedCollection)
    assert (again.threshold, again.manifests, again.shards) == (
        plan.threshold,
        plan.manifests,
        plan.shards,
    )
    assert Digest.of(b"c") in again.read_liveset()
    with pytest.raises(AttributeError):
        plan.threshold = datetime.now(UTC)  # type: ignore[misc]


def test_local_manifests_and_a_mix_of_locations(
    repo: S3Repository, manifests: str, tmp_path: Path
) -> None:
    write_manifest(tmp_path / "local.parquet", rows("z"), created_at=NEWER)
    plan = plan_collection(repo, [manifests, str(tmp_path)])
    assert plan.live_rows == 6
    assert Digest.of(b"z") in plan.read_liveset()
    assert plan.locations[-1] == str(tmp_path / "local.parquet")


# -- collecting by the plan -------------------------------------------------------------------


def test_a_collection_by_the_plan_keeps_what_the_manifests_name(bucket: str) -> None:
    repo = S3Repository(
        bucket,
        "planned",
        grace=timedelta(seconds=5),
        refresh_window=timedelta(seconds=1),
        settle=timedelta(seconds=1),
    )
    kept, garbage = repo.put(b"named by the manifest"), repo.put(b"named by nothing")
    time.sleep(5 + 3)  # both are older than the threshold to come
    write_manifest(f"s3://{bucket}/manifests/live.parquet", [ManifestRow(kept, 21, "test")])

    plan = plan_collection(repo, [f"s3://{bucket}/manifests/"])
    report = repo.collect(plan.read_liveset(), threshold=plan.threshold)

    assert (report.live, report.collected) == (1, 1)
    assert repo.stat(kept).size == 21
    with pytest.raises(NotExistError):
        repo.stat(garbage)


# -- refusals: nothing is planned ---------------------------------------------------------------


def test_a_grace_shorter_than_the_repository_s_is_refused_before_anything_is_read(
    repo: S3Repository,
) -> None:
    missing = f"s3://{repo.bucket}/no/such/manifest.parquet"  # never read
    with pytest.raises(InvalidArgumentError, match="shorter than the repository's grace"):
        plan_collection(repo, [missing], grace=DAY - timedelta(seconds=1))
    with pytest.raises(NotExistError):
        plan_collection(repo, [missing], grace=DAY)


def test_one_bad_manifest_means_no_plan(repo: S3Repository, manifests: str) -> None:
    repo.client.put_object(Bucket=repo.bucket, Key="manifests/c.parquet", Body=b"not parquet")
    with pytest.raises(InvalidArgumentError, match=f"{manifests}c.parquet"):
        plan_collection(repo, [manifests])


@pytest.mark.parametrize(
    "where", ["manifests/gone.parquet", "nothing/under/here/"], ids=["missing", "empty prefix"]
)
def test_a_missing_manifest_or_an_empty_prefix_means_no_plan(
    repo: S3Repository, manifests: str, where: str
) -> None:
    with pytest.raises(NotExistError):
        plan_collection(repo, [manifests, f"s3://{repo.bucket}/{where}"])


def test_a_manifest_from_the_future_is_refused(repo: S3Repository) -> None:
    location = f"s3://{repo.bucket}/manifests/skewed.parquet"
    write_manifest(location, rows("e"), created_at=datetime.now(UTC) + timedelta(minutes=5))
    with pytest.raises(InvalidArgumentError, match="in the future by the store's clock"):
        plan_collection(repo, [location])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"manifests": []}, "no manifests given"),
        ({"manifests": "s3://b/manifests/"}, "a list of locations, not one"),
        ({"manifests": Path("live.parquet")}, "a list of locations, not one"),
        ({"manifests": 3}, "a list of locations, got int"),
        ({"grace": 86400}, "grace must be a timedelta"),
        ({"liveset": "approximate"}, "liveset must be 'exact' or 'bloom'"),
        ({"shard_width": 0}, "shard_width is 1 to 4"),
        ({"shard_width": 5}, "shard_width is 1 to 4"),
        ({"shard_width": True}, "shard_width is an integer"),
    ],
)
def test_bad_arguments_are_invalid_arguments(
    tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    class Local:
        grace = DAY

    given: dict[str, Any] = {"manifests": [str(tmp_path / "never-read.parquet")], **arguments}
    with pytest.raises(InvalidArgumentError, match=message):
        plan_collection(Local(), **given)


# -- what planning needs of the repository ---------------------------------------------------------


def test_planning_needs_only_the_repository_s_grace(tmp_path: Path) -> None:
    class Elsewhere:
        """A repository that is not in S3 (as a file:// one is)."""

        grace = timedelta(hours=2)

        def __str__(self) -> str:
            return "file:///srv/blobs"

    write_manifest(tmp_path / "live.parquet", rows("a"), created_at=OLDER)
    plan = plan_collection(Elsewhere(), [str(tmp_path)])
    assert plan.repository == "file:///srv/blobs"
    assert plan.threshold == datetime(2025, 3, 1, 10, 0, 0, tzinfo=UTC)


def test_manifests_in_s3_are_read_with_the_repository_s_client(
    s3server: Any, dead_default: Any
) -> None:
    bucket = s3server.create_bucket()  # no client is set for it: only the default, dead
    client = s3server.client()
    repo = S3Repository(bucket, "p", client=client)
    location = f"s3://{bucket}/manifests/live.parquet"
    write_manifest(location, rows("a"), created_at=OLDER, client=client)

    assert plan_collection(repo, [f"s3://{bucket}/manifests/"]).locations == (location,)

    nameless = S3Repository(bucket, "p")  # it has the dead default, like the fallback
    with pytest.raises(UnavailableError):
        plan_collection(nameless, [location])
    # The manifests come through ``client``, but the plan reads the store's clock too.
    with pytest.raises(UnavailableError, match="collections/"):
        plan_collection(nameless, [location], client=client)


def test_the_suggested_shard_width_grows_with_the_liveset() -> None:
    assert (suggested_shard_width(0), suggested_shard_width(4_999_999)) == (0, 0)
    assert (suggested_shard_width(5_000_000), suggested_shard_width(49_999_999)) == (1, 1)
    assert suggested_shard_width(50_000_000) == suggested_shard_width(10**9) == 2
