"""Merging and compacting manifests (``s3repo_core.compaction``): what the one file may
claim, each digest once, and nothing written when an input is bad."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devkit.localserver import LocalS3
from s3repo_core import (
    Digest,
    InvalidArgumentError,
    ManifestRow,
    compact_manifests,
    merge_manifests,
    read_liveset_with_info,
    read_manifest,
    write_manifest,
)
from s3repo_core.manifest import ManifestKind

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def row(name: str, source: str = "") -> ManifestRow:
    data = name.encode()
    return ManifestRow(Digest.of(data), len(data), source or name)


def write(
    path: Path, names: list[str], at: datetime, kind: ManifestKind = "snapshot", **labels: str
) -> str:
    rows = [row(n, f"{path.stem}:{n}") for n in names]
    write_manifest(path, rows, created_at=at, kind=kind, labels=labels)
    return str(path)


def test_a_merge_names_each_digest_once_with_its_first_source_and_the_oldest_time(
    tmp_path: Path,
) -> None:
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "a.parquet", ["x", "y"], T0 + 2 * HOUR, team="ml", day="1")
    write(tmp_path / "in" / "b.parquet", ["y", "z"], T0, team="ml", day="2")

    info = merge_manifests(tmp_path / "in", tmp_path / "merged.parquet")

    merged = read_manifest(tmp_path / "merged.parquet")
    assert [(r.digest, r.source) for r in merged] == sorted(
        [
            (row("x").digest, "a:x"),
            (row("y").digest, "a:y"),  # named by both: as the first names it
            (row("z").digest, "b:z"),
        ],
        key=lambda pair: pair[0].raw,
    )
    assert merged.created_at == info.created_at == T0  # claims no more than the oldest
    assert merged.kind == "snapshot"
    assert merged.labels == {"team": "ml"}  # what they all say, nothing one says alone
    assert merged.created_by == "s3repo merge"


def test_a_merge_of_records_is_a_record(tmp_path: Path) -> None:
    first = write(tmp_path / "r1.parquet", ["x"], T0, kind="record", asset="model")
    second = write(tmp_path / "r2.parquet", ["y"], T0 + HOUR, kind="record", asset="model")

    merge_manifests([first, second], tmp_path / "merged.parquet")

    merged = read_manifest(tmp_path / "merged.parquet")
    assert (merged.kind, merged.created_at, merged.labels) == ("record", T0, {"asset": "model"})
    _, read = read_liveset_with_info(tmp_path / "merged.parquet")
    assert read.oldest_snapshot_at is None  # records still hold no threshold back


def test_snapshots_and_records_do_not_merge_and_nothing_is_written(tmp_path: Path) -> None:
    snapshot = write(tmp_path / "s.parquet", ["x"], T0)
    record = write(tmp_path / "r.parquet", ["y"], T0, kind="record")

    with pytest.raises(InvalidArgumentError, match="compact them into a snapshot"):
        merge_manifests([snapshot, record], tmp_path / "merged.parquet")
    assert not (tmp_path / "merged.parquet").exists()


def test_a_bad_input_fails_the_merge_and_the_compaction_before_anything_is_written(
    tmp_path: Path,
) -> None:
    good = write(tmp_path / "good.parquet", ["x"], T0)
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    for combine in (merge_manifests, compact_manifests):
        with pytest.raises(InvalidArgumentError):
            combine([good, str(tmp_path / "bad.parquet")], tmp_path / "out.parquet")
        assert not (tmp_path / "out.parquet").exists()


def test_nothing_to_merge_or_compact_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="nothing to merge"):
        merge_manifests([], tmp_path / "out.parquet")
    with pytest.raises(InvalidArgumentError, match="nothing to compact"):
        compact_manifests([], tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_compacting_records_gives_a_snapshot_stamped_when_reading_began(tmp_path: Path) -> None:
    (tmp_path / "records").mkdir()
    write(tmp_path / "records" / "1.parquet", ["x", "y"], T0, kind="record", asset="a")
    write(tmp_path / "records" / "2.parquet", ["y", "z"], T0 + HOUR, kind="record", asset="b")
    before = datetime.now(UTC)

    info = compact_manifests(tmp_path / "records", tmp_path / "compact.parquet")

    compacted = read_manifest(tmp_path / "compact.parquet")
    assert compacted.kind == info.kind == "snapshot"
    assert before <= compacted.created_at <= datetime.now(UTC)
    assert sorted(r.digest for r in compacted) == sorted(row(n).digest for n in "xyz")


def test_compacting_a_snapshot_keeps_its_older_time(tmp_path: Path) -> None:
    """A snapshot's source may have stored more since it was written: a compaction
    stamped later would claim those objects are named when they are not."""
    snapshot = write(tmp_path / "s.parquet", ["x"], T0)
    record = write(tmp_path / "r.parquet", ["y"], T0 + HOUR, kind="record")

    compact_manifests([snapshot, record], tmp_path / "compact.parquet")

    assert read_manifest(tmp_path / "compact.parquet").created_at == T0


def test_merge_reads_and_writes_s3(moto_server: LocalS3) -> None:
    bucket = moto_server.create_bucket()
    client = moto_server.client()
    for name, names in (("a", ["x"]), ("b", ["x", "y"])):
        write_manifest(
            f"s3://{bucket}/daily/{name}.parquet",
            [row(n) for n in names],
            created_at=T0,
            client=client,
        )

    info = merge_manifests(
        f"s3://{bucket}/daily/", f"s3://{bucket}/merged/all.parquet", client=client
    )

    assert info.num_rows == 2
    merged = read_manifest(f"s3://{bucket}/merged/all.parquet", client=client)
    assert sorted(r.digest for r in merged) == sorted([row("x").digest, row("y").digest])
