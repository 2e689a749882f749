"""Retention rules (``s3repo_core.retention``) and the manifest metadata they read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from s3repo_core import (
    Digest,
    InvalidArgumentError,
    ManifestInfo,
    RetentionPolicy,
    apply_retention,
    decide_retention,
    manifests_naming,
    read_liveset_with_info,
    read_manifest,
    read_manifest_infos,
    write_manifest,
)
from s3repo_core.retention import policy_from_metadata

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def record(
    name: str, age: timedelta, asset: str | None = "model", run: str | None = None, **labels: str
) -> ManifestInfo:
    if asset is not None:
        labels["asset"] = asset
    labels["run_id"] = run or name
    return ManifestInfo(f"/records/{name}.parquet", 1, NOW - age, "test", "record", labels)


def order(runs: dict[tuple[str, str | None], list[str]]):  # type: ignore[no-untyped-def]
    """``latest`` from a table of run ids, newest first."""

    def latest(asset: str, partition: str | None, n: int) -> Sequence[str]:
        return runs.get((asset, partition), [])[:n]

    return latest


def names(judged: Sequence[object]) -> list[str]:
    return sorted(Path(j.record.location).stem for j in judged)  # type: ignore[attr-defined]


def test_five_materializations_keep_last_two_retires_the_three_oldest() -> None:
    records = [record(f"m{i}", (10 - i) * DAY) for i in range(5)]  # m4 newest
    decision = decide_retention(
        records,
        now=NOW,
        latest=order({("model", None): ["m4", "m3", "m2", "m1", "m0"]}),
        policy=RetentionPolicy(keep_last=2, keep_within=timedelta(0)),
    )
    assert names(decision.kept) == ["m3", "m4"]
    assert names(decision.retired) == ["m0", "m1", "m2"]


def test_keep_within_is_a_union_with_keep_last() -> None:
    records = [record("old", 30 * DAY), record("recent", 2 * DAY), record("latest", 20 * DAY)]
    decision = decide_retention(
        records,
        now=NOW,
        latest=order({("model", None): ["latest", "recent", "old"]}),
        policy=RetentionPolicy(keep_last=1, keep_within=7 * DAY),
    )
    assert names(decision.kept) == ["latest", "recent"]  # the latest by count, recent by age
    assert names(decision.retired) == ["old"]


def test_a_record_whose_materialization_never_appeared_is_kept_by_age_only() -> None:
    crashed_young, crashed_old = record("young", DAY), record("old", 30 * DAY)
    decision = decide_retention(
        [crashed_young, crashed_old, record("shown", 40 * DAY)],
        now=NOW,
        latest=order({("model", None): ["shown"]}),
        policy=RetentionPolicy(keep_last=3, keep_within=7 * DAY),
    )
    assert names(decision.kept) == ["shown", "young"]
    assert names(decision.retired) == ["old"]


def test_partitions_are_counted_apart_and_policies_are_per_asset() -> None:
    records = [
        record("a1", 9 * DAY, partition="2026-01-01"),
        record("a2", 8 * DAY, partition="2026-01-01"),
        record("b1", 9 * DAY, partition="2026-01-02"),
        record("t1", 9 * DAY, asset="table"),
        record("t2", 8 * DAY, asset="table"),
    ]
    runs = {
        ("model", "2026-01-01"): ["a2", "a1"],
        ("model", "2026-01-02"): ["b1"],
        ("table", None): ["t2", "t1"],
    }
    policies = {"model": RetentionPolicy(1, DAY), "table": RetentionPolicy(2, DAY)}
    decision = decide_retention(
        records, now=NOW, latest=order(runs), policy=lambda asset: policies[asset]
    )
    assert names(decision.kept) == ["a2", "b1", "t1", "t2"]
    assert names(decision.retired) == ["a1"]


def test_op_outputs_go_by_age_and_young_or_snapshot_manifests_stay() -> None:
    snapshot = ManifestInfo("/records/snap.parquet", 1, NOW - 99 * DAY, "test", "snapshot", {})
    decision = decide_retention(
        [
            record("op-old", 9 * DAY, asset=None),
            record("op-new", DAY, asset=None),
            record("just-written", timedelta(minutes=1)),
            snapshot,
        ],
        now=NOW,
        latest=order({}),
        policy=RetentionPolicy(1, timedelta(0)),
        default=RetentionPolicy(1, 7 * DAY),
        too_young=timedelta(hours=1),
    )
    assert names(decision.kept) == ["just-written", "op-new"]
    assert names(decision.retired) == ["op-old"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"keep_last": 0}, "at least 1"),
        ({"keep_last": True}, "an integer"),
        ({"keep_within": timedelta(seconds=-1)}, "at least 0"),
    ],
)
def test_a_bad_policy_is_an_invalid_argument(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        RetentionPolicy(**arguments)  # type: ignore[arg-type]


def test_definition_metadata_overrides_the_default_policy() -> None:
    default = RetentionPolicy(3, 7 * DAY)
    assert policy_from_metadata({}, default) == default
    assert policy_from_metadata(
        {"s3repo/keep_last": 1, "s3repo/keep_within_days": 0.5}, default
    ) == RetentionPolicy(1, timedelta(hours=12))
    with pytest.raises(InvalidArgumentError, match="keep_within_days"):
        policy_from_metadata({"s3repo/keep_within_days": "a week"}, default)


# -- the manifest metadata retention reads, and retiring ----------------------------------


def test_kind_and_labels_round_trip_and_old_files_are_snapshots(tmp_path: Path) -> None:
    digest = Digest.of(b"x")
    written = write_manifest(
        tmp_path / "r.parquet",
        [(digest, 1, "s")],
        kind="record",
        labels={"asset": "a/b", "partition": "p 1"},
    )
    write_manifest(tmp_path / "s.parquet", [(digest, 1, "s")])
    (infos_r, infos_s) = read_manifest_infos(tmp_path)
    assert (infos_r.kind, dict(infos_r.labels)) == ("record", {"asset": "a/b", "partition": "p 1"})
    assert infos_r == written
    assert (infos_s.kind, dict(infos_s.labels)) == ("snapshot", {})
    assert read_manifest(tmp_path / "r.parquet").kind == "record"
    _, info = read_liveset_with_info(tmp_path)
    assert info.oldest_snapshot_at == infos_s.created_at


def test_an_unknown_kind_is_refused_on_read(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "m.parquet"
    write_manifest(path, [(Digest.of(b"x"), 1, "s")])
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    meta[b"s3repo.kind"] = b"tombstone"
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(InvalidArgumentError, match="of kind 'tombstone'"):
        read_manifest_infos(path)
    with pytest.raises(InvalidArgumentError, match="kind must be"):
        write_manifest(tmp_path / "n.parquet", [], kind="tombstone")  # type: ignore[arg-type]


def test_which_manifests_name_a_digest(tmp_path: Path) -> None:
    shared, only_b = Digest.of(b"shared"), Digest.of(b"only b")
    write_manifest(tmp_path / "a.parquet", [(shared, 6, "a")], kind="record")
    write_manifest(tmp_path / "b.parquet", [(shared, 6, "b"), (only_b, 6, "b")])
    assert [Path(i.location).name for i in manifests_naming(shared, tmp_path)] == [
        "a.parquet",
        "b.parquet",
    ]
    assert [Path(i.location).name for i in manifests_naming(str(only_b), tmp_path)] == ["b.parquet"]
    assert manifests_naming(Digest.of(b"nobody's"), tmp_path) == []


def test_apply_retention_removes_exactly_the_retired_records(tmp_path: Path) -> None:
    for name in ("m0", "m1", "m2"):
        write_manifest(
            tmp_path / f"{name}.parquet",
            [(Digest.of(name.encode()), 2, name)],
            kind="record",
            labels={"asset": "model", "run_id": name},
            created_at=NOW - 30 * DAY,
        )
    decision = decide_retention(
        read_manifest_infos(tmp_path),
        now=NOW,
        latest=order({("model", None): ["m2", "m1", "m0"]}),
        policy=RetentionPolicy(1, DAY),
    )
    assert apply_retention(decision) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m2.parquet"]
    assert apply_retention(decision) == 2  # retiring what is gone is not an error
