"""Sorted manifests and liveset slices: a shard reads only the row groups of its range.

What a collection at scale rests on (issue 15): manifests are written sorted by digest,
with a checked index of their row groups; a plan reads footers only and pins each
manifest's version; a shard step reads only its slice, of exactly that version, and
fails closed on anything it cannot trust.
"""

from __future__ import annotations

import os
import pickle
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from devkit.localserver import LocalS3
from s3repo_core import (
    BloomLiveset,
    ConflictError,
    Digest,
    ExactLiveset,
    InvalidArgumentError,
    ManifestRow,
    NotExistError,
    S3Repository,
    _sortedruns,
    plan_collection,
    read_manifest,
    write_manifest,
)
from s3repo_core._liveset_slices import read_footers, read_pinned_liveset
from s3repo_core._rowgroups import INDEX_KEY, SORTED_KEY, index_metadata
from s3repo_core.manifest import BATCH_ROWS

WHEN = datetime(2025, 6, 1, tzinfo=UTC)
N = 5 * BATCH_ROWS - 1000  # five row groups, the last not full


def digests(n: int, seed: int = 7) -> list[Digest]:
    raw = np.random.default_rng(seed).bytes(32 * n)
    return [Digest(raw[i : i + 32]) for i in range(0, len(raw), 32)]


def of_shards(found: list[Digest], *shards: str) -> set[Digest]:
    return {d for d in found if d.hex.startswith(shards)}


def members(live: ExactLiveset | BloomLiveset, found: list[Digest]) -> set[Digest]:
    return {d for d in found if d in live}


@pytest.fixture(scope="module")
def many() -> list[Digest]:
    return digests(N)


@pytest.fixture
def big(tmp_path: Path, many: list[Digest]) -> Path:
    path = tmp_path / "big.parquet"
    write_manifest(path, ((d, 1, "x") for d in many), created_at=WHEN)
    return path


@pytest.fixture
def bucket(moto_bucket: str) -> str:
    return moto_bucket


# -- writing: sorted, in row groups, with a checked index --------------------------------


def test_a_manifest_is_written_sorted_by_digest_with_its_row_groups_indexed(
    big: Path, many: list[Digest]
) -> None:
    file = pq.ParquetFile(big)
    assert file.metadata.num_row_groups == 5
    meta = file.metadata.metadata
    assert meta[SORTED_KEY] == b"digest" and meta[INDEX_KEY].startswith(b"crc32:")
    stored = [row.digest.raw for row in read_manifest(big)]
    assert stored == sorted(d.raw for d in many)


def test_a_long_manifest_is_sorted_in_runs_spilled_and_merged_with_rows_kept_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sortedruns, "RUN_ROWS", 1000)  # 7 runs of 1,000 rows or fewer
    monkeypatch.setattr(_sortedruns.tempfile, "tempdir", str(tmp_path))
    found = digests(6500, seed=3)
    rows = [ManifestRow(d, i, f"source {i}") for i, d in enumerate(found)]
    rows += rows[:10]  # a digest named twice is kept twice, as read
    path = tmp_path / "long.parquet"

    info = write_manifest(path, rows, created_at=WHEN)

    stored = list(read_manifest(path))
    assert info.num_rows == len(stored) == 6510
    assert stored == sorted(rows, key=lambda row: row.digest.raw)
    assert [p.name for p in tmp_path.iterdir()] == ["long.parquet"]  # runs removed


# -- reading a slice ------------------------------------------------------------------


@pytest.mark.parametrize("shards", [["3"], ["a7"], ["0", "f"], ["3c", "d"]])
def test_a_shard_reads_only_the_row_groups_of_its_range_and_gets_exactly_its_digests(
    big: Path, many: list[Digest], shards: list[str]
) -> None:
    info = read_footers([big])

    live, read = read_pinned_liveset(info.per_manifest, shards=shards)

    assert isinstance(live, ExactLiveset)
    assert set(live) == of_shards(many, *shards)
    assert read.row_groups == 5
    # a 1/16 shard of five row groups meets one or two of them; "0" and "f" two at most
    assert 1 <= read.row_groups_read <= 2 * len(shards)
    assert read.digests == len(live)


def test_the_whole_liveset_and_the_shards_that_hold_no_digest(
    big: Path, many: list[Digest]
) -> None:
    info = read_footers([big])
    whole, read = read_pinned_liveset(info.per_manifest)
    assert set(whole) == set(many) and read.row_groups_read == 5
    none, read = read_pinned_liveset(info.per_manifest, shards=["other", "uploads"])
    assert len(none) == 0 and read.row_groups_read == 0


def test_a_bloom_slice_holds_every_digest_of_its_shard_in_a_filter_sized_for_it(
    big: Path, many: list[Digest]
) -> None:
    info = read_footers([big])
    live, _ = read_pinned_liveset(info.per_manifest, shards=["5"], kind="bloom", fp_rate=0.01)
    assert isinstance(live, BloomLiveset)
    assert members(live, sorted(of_shards(many, "5"))) == of_shards(many, "5")
    whole, _ = read_pinned_liveset(info.per_manifest, kind="bloom", fp_rate=0.01)
    assert live.nbytes < whole.nbytes / 10  # sized for 1/16 of the rows


def test_many_manifests_sorted_and_not_merge_into_one_exact_slice(
    tmp_path: Path, many: list[Digest]
) -> None:
    # Three of ours (one large, two small) and one another tool wrote unsorted.
    write_manifest(tmp_path / "large.parquet", ((d, 1, "") for d in many[:200_000]))
    write_manifest(tmp_path / "small.parquet", ((d, 1, "") for d in many[150_000:150_500]))
    write_manifest(tmp_path / "tiny.parquet", [(many[-1], 1, "")])
    foreign = many[200_000:260_000]
    table = pa.table(
        {
            "digest": pa.array([d.raw for d in foreign], pa.binary(32)),
            "size": pa.array([1] * len(foreign), pa.int64()),
        }
    ).replace_schema_metadata(
        {
            b"s3repo.manifest": b"1",
            b"s3repo.created_at": WHEN.isoformat(),
            b"s3repo.created_by": b"x",
        }
    )
    pq.write_table(table, tmp_path / "foreign.parquet", row_group_size=20_000)
    info = read_footers([tmp_path])
    expected = set(many[:260_000]) | {many[-1]}

    for shards in (None, ["9"], ["9c", "00"]):
        live, read = read_pinned_liveset(info.per_manifest, shards=shards)
        assert set(live) == (expected if shards is None else of_shards(list(expected), *shards))
        if shards is not None:
            assert read.row_groups_read < read.row_groups
    _, read = read_pinned_liveset(info.per_manifest, shards=["9"])
    assert read.row_groups_read >= 3  # the foreign file has no index: all its groups


# -- failing closed -----------------------------------------------------------------------


def write_marked(path: Path, raws: list[bytes], index: dict[bytes, bytes]) -> None:
    """A manifest in two row groups of ``raws`` as given, with ``index`` as its metadata."""
    table = pa.table(
        {
            "digest": pa.array(raws, pa.binary(32)),
            "size": pa.array([1] * len(raws), pa.int64()),
            "source": pa.array([""] * len(raws), pa.string()),
        }
    ).replace_schema_metadata(
        {
            b"s3repo.manifest": b"1",
            b"s3repo.created_at": WHEN.isoformat().encode(),
            b"s3repo.created_by": b"test",
            **index,
        }
    )
    pq.write_table(table, path, row_group_size=len(raws) // 2)


def halves(raws: list[bytes]) -> list[tuple[int, bytes, bytes]]:
    half = len(raws) // 2
    return [(half, min(part), max(part)) for part in (raws[:half], raws[half:])]


def test_a_footer_that_does_not_match_its_index_is_refused_before_anything_is_read(
    tmp_path: Path,
) -> None:
    raws = sorted(d.raw for d in digests(1000))
    index = index_metadata(halves(raws))
    crc = int(index[INDEX_KEY].split(b":")[1], 16)
    path = tmp_path / "damaged.parquet"
    write_marked(path, raws, {**index, INDEX_KEY: f"crc32:{crc ^ 1:08x}".encode()})
    with pytest.raises(InvalidArgumentError, match="do not match its digest index"):
        read_footers([path])
    path.unlink()
    write_marked(path, raws, index)  # the same, with the right index, reads
    info = read_footers([path])
    assert len(read_pinned_liveset(info.per_manifest, shards=["8"])[0]) > 0


def test_row_groups_out_of_order_or_unsorted_inside_fail_the_read(tmp_path: Path) -> None:
    raws = sorted(d.raw for d in digests(1000))
    overlapping = raws[::2] + raws[1::2]  # each half spans nearly everything
    path = tmp_path / "overlapping.parquet"
    write_marked(path, overlapping, index_metadata(halves(overlapping)))
    with pytest.raises(InvalidArgumentError, match="begins before the one before ends"):
        read_footers([path])
    # Rows out of order inside a group whose bounds and index agree: only its rows tell.
    shuffled = raws.copy()
    shuffled[10], shuffled[20] = shuffled[20], shuffled[10]
    path = tmp_path / "unsorted.parquet"
    write_marked(path, shuffled, index_metadata(halves(shuffled)))
    info = read_footers([path])
    with pytest.raises(InvalidArgumentError, match="does not hold what the digest index says"):
        read_pinned_liveset(info.per_manifest)


def test_a_manifest_replaced_after_the_plan_is_not_read_in_its_new_version(
    tmp_path: Path, bucket: str, many: list[Digest]
) -> None:
    local = tmp_path / "live.parquet"
    remote = f"s3://{bucket}/manifests/live.parquet"
    for where in (local, remote):
        write_manifest(where, ((d, 1, "") for d in many[:100]), created_at=WHEN)
    info = read_footers([local, remote])
    assert all(m.version for m in info.per_manifest)

    write_manifest(remote, ((d, 1, "") for d in many[100:200]), created_at=WHEN)
    with pytest.raises(ConflictError, match="replaced after the collection was planned"):
        read_pinned_liveset(info.per_manifest[1:])
    os.utime(local, ns=(1, 1))  # another version by its time alone
    with pytest.raises(ConflictError, match="replaced after the collection was planned"):
        read_pinned_liveset(info.per_manifest[:1])
    local.unlink()
    with pytest.raises(NotExistError):
        read_pinned_liveset(info.per_manifest[:1])


def test_digests_promised_sorted_that_are_not_make_no_liveset() -> None:
    raws = np.frombuffer(b"".join(sorted(d.raw for d in digests(10))), dtype="V32")
    with pytest.raises(InvalidArgumentError, match="out of order"):
        ExactLiveset.from_sorted_blocks([raws[5:], raws[:5]], capacity=10)
    with pytest.raises(InvalidArgumentError, match="more than the 9"):
        ExactLiveset.from_sorted_blocks([raws], capacity=9)
    live = ExactLiveset.from_sorted_blocks([raws[:6], raws[5:]], capacity=11)
    assert len(live) == 10  # the digest at the seam is there once


# -- planning -------------------------------------------------------------------------------


def test_a_plan_reads_footers_only_and_stays_small_whatever_the_liveset(
    bucket: str, moto_server: LocalS3, many: list[Digest]
) -> None:
    repo = S3Repository(bucket, client=moto_server.client())
    location = f"s3://{bucket}/manifests/big.parquet"
    write_manifest(location, ((d, 1, "") for d in many), created_at=WHEN)

    plan = plan_collection(repo, [location], shard_width=1)

    assert len(pickle.dumps(plan)) < 4096  # not the 10 MiB of its digests
    live = plan.read_liveset(["c"], client=repo.client)
    assert set(live) == of_shards(many, "c")
    assert sum(len(plan.read_liveset([s], client=repo.client)) for s in plan.shards) == N


def test_a_plan_names_no_manifest_whose_footer_is_bad(tmp_path: Path, bucket: str) -> None:
    raws = sorted(d.raw for d in digests(100))
    write_marked(tmp_path / "bad.parquet", raws, {SORTED_KEY: b"digest", INDEX_KEY: b"crc32:0"})
    repo = S3Repository(bucket)
    with pytest.raises(InvalidArgumentError, match="digest index"):
        plan_collection(repo, [tmp_path])
