"""Merging and compacting manifests (``s3repo_core.compaction``): what the one file may
claim, each digest once, and nothing written when an input is bad."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devkit.localserver import LocalS3
from s3repo_core import (
    Digest,
    InvalidArgumentError,
    ManifestRow,
    compact_manifests,
    compact_records,
    copy_records,
    merge_manifests,
    read_liveset_with_info,
    read_manifest,
    records_modified_since,
    write_manifest,
)
from s3repo_core.compaction import RECORDS_LISTED_AT
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


# -- a copy of the records retention kept (compact_records, copy_records) -----------------


def test_a_copy_of_records_is_a_sorted_snapshot_stamped_when_their_listing_began(
    tmp_path: Path,
) -> None:
    (tmp_path / "records").mkdir()
    names = [f"object-{n}" for n in range(40)]
    locations = [
        write(tmp_path / "records" / f"{n}.parquet", names[n::4], T0 + n * HOUR, kind="record")
        for n in range(4)
    ]
    listed_at = T0 + 5 * HOUR

    info = compact_records(locations, tmp_path / "copy.parquet", listed_at=listed_at)

    copy = read_manifest(tmp_path / "copy.parquet")
    assert copy.kind == info.kind == "snapshot"
    assert copy.created_at == listed_at  # its time bounds the threshold, as a snapshot's
    assert copy.labels == {RECORDS_LISTED_AT: listed_at.isoformat()}
    digests = [r.digest.raw for r in copy]
    assert digests == sorted(digests) == sorted(row(n).digest.raw for n in names)


def test_only_records_are_copied_and_a_bad_one_writes_nothing(tmp_path: Path) -> None:
    record = write(tmp_path / "r.parquet", ["x"], T0, kind="record")
    snapshot = write(tmp_path / "s.parquet", ["y"], T0)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")

    with pytest.raises(InvalidArgumentError, match="is a snapshot, not a record"):
        compact_records([record, snapshot], tmp_path / "copy.parquet", listed_at=T0)
    with pytest.raises(InvalidArgumentError):
        compact_records(
            [record, str(tmp_path / "broken.parquet")], tmp_path / "copy.parquet", listed_at=T0
        )
    assert not (tmp_path / "copy.parquet").exists()


def aged(location: str, at: datetime) -> str:
    os.utime(location, (at.timestamp(), at.timestamp()))
    return location


def test_records_modified_since_a_time_are_found_by_a_listing(tmp_path: Path) -> None:
    (tmp_path / "records" / "a").mkdir(parents=True)
    now = datetime.now(UTC)
    old = aged(
        write(tmp_path / "records" / "a" / "old.parquet", ["x"], T0, kind="record"), now - 2 * HOUR
    )
    new = aged(write(tmp_path / "records" / "new.parquet", ["y"], T0, kind="record"), now)

    assert records_modified_since(tmp_path / "records", now - HOUR) == [new]
    assert sorted(records_modified_since(tmp_path / "records", now - 3 * HOUR)) == sorted(
        [old, new]
    )
    assert records_modified_since(tmp_path / "records", now + HOUR) == []


def test_copying_the_kept_records_finds_the_recent_ones_and_removes_earlier_copies(
    tmp_path: Path,
) -> None:
    records, folder = tmp_path / "records", f"{tmp_path / 'copies'}/"
    records.mkdir()
    now = datetime.now(UTC)
    grace = HOUR
    kept = [
        aged(write(records / f"{n}.parquet", [f"k{n}"], T0, kind="record"), now - 3 * HOUR)
        for n in range(3)
    ]
    # Landed as the listing passed it, or since: within the grace before the listing.
    late = aged(write(records / "late.parquet", ["late"], T0, kind="record"), now - grace / 2)

    first = copy_records(kept, str(records), folder, listed_at=now, grace=grace)
    assert first.copy is not None and first.removed == 0
    assert first.recent == (late,)
    assert first.locations == [first.copy.location, late]
    liveset, _ = read_liveset_with_info(first.locations)
    assert {row(n).digest for n in ["k0", "k1", "k2", "late"]} <= set(liveset)

    # The next, after retention retired k0: a new copy without it; the first is gone.
    second = copy_records(kept[1:], str(records), folder, listed_at=now + HOUR, grace=grace)
    assert second.copy is not None and second.removed == 1
    assert sorted(Path(folder).iterdir()) == [Path(second.copy.location)]
    assert row("k0").digest not in {r.digest for r in read_manifest(second.copy.location)}

    # Nothing kept: no copy, and none of the earlier ones left to name retired records.
    third = copy_records([], str(records), folder, listed_at=now + 2 * HOUR, grace=grace)
    assert (third.copy, third.removed) == (None, 1)
    assert list(Path(folder).iterdir()) == []


def test_records_are_copied_on_s3(moto_server: LocalS3) -> None:
    bucket = moto_server.create_bucket()
    client = moto_server.client()
    records = f"s3://{bucket}/records/"
    kept = [
        write_manifest(
            f"{records}{n}.parquet", [row(f"s{n}")], kind="record", client=client
        ).location
        for n in range(2)
    ]
    listed_at = datetime.now(UTC)

    copied = copy_records(
        kept, records, f"s3://{bucket}/copies/", listed_at=listed_at, grace=HOUR, client=client
    )

    assert copied.copy is not None and copied.copy.location.startswith(f"s3://{bucket}/copies/")
    assert sorted(copied.recent) == sorted(kept)  # just written: within the grace
    copy = read_manifest(copied.copy.location, client=client)
    assert {r.digest for r in copy} == {row("s0").digest, row("s1").digest}
    assert records_modified_since(records, listed_at + HOUR, client=client) == []
