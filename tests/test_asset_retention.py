"""The loop a Dagster user lives in: an asset is materialised through S3RepoIOManager,
named by a record manifest, kept by the retention policy, and collected once no kept
record names it; on a real instance in a temporary directory, against moto, whose
clock the tests move instead of waiting out the grace.
"""

# No "from __future__ import annotations": Dagster reads the assets' annotations at run time.
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    Definitions,
    StaticPartitionsDefinition,
    asset,
    instance_for_test,
    materialize,
)

from devkit.localserver import LocalS3
from repo_pipelines import S3RepoIOManager, S3RepoResource, build_definitions, stored_output_checks
from s3repo_core import (
    Digest,
    NotExistError,
    S3Repository,
    manifests_naming,
    read_manifest,
    write_manifest,
)

GRACE = 10.0


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield instance


@pytest.fixture
def resource(moto_server: LocalS3) -> S3RepoResource:
    bucket = f"ret-{uuid.uuid4().hex[:16]}"
    moto_server.client().create_bucket(Bucket=bucket)
    return S3RepoResource(
        bucket=bucket,
        prefix="artifacts",
        endpoint_url=moto_server.endpoint_url,
        region=moto_server.region,
        access_key_id=moto_server.access_key,
        secret_access_key=moto_server.secret_key,
        grace_seconds=GRACE,
        refresh_window_seconds=1.0,
        settle_seconds=1.0,
    )


@pytest.fixture
def core(resource: S3RepoResource) -> S3Repository:
    return resource.repository()


def io_manager(resource: S3RepoResource, records: Path, **policy: Any) -> S3RepoIOManager:
    return S3RepoIOManager(repository=resource, manifests=str(records), **policy)


def present(core: S3Repository, digest: Digest) -> bool:
    try:
        core.stat(digest)
    except NotExistError:
        return False
    return True


def test_each_output_gets_a_record_naming_every_object_it_needs(
    resource: S3RepoResource, instance: DagsterInstance, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"a")
    (tree / "sub" / "b.txt").write_bytes(b"b")
    days = StaticPartitionsDefinition(["2026-11-30", "2026-12-01"])

    @asset
    def build() -> Path:
        return tree

    @asset(partitions_def=days)
    def daily() -> bytes:
        return b"one day"

    records = tmp_path / "records"
    manager = io_manager(resource, records)
    result = materialize([build], instance=instance, resources={"io_manager": manager})
    materialize(
        [daily], instance=instance, resources={"io_manager": manager}, partition_key="2026-12-01"
    )
    (found,) = (records / "assets" / "build" / "_").glob("*.parquet")
    record = read_manifest(found)
    assert record.kind == "record"
    assert record.labels == {
        "asset": "build",
        "run_id": result.run_id,
        "output": "result",
        "keep_last": "3",  # the IO manager's policy, as the asset sets none
        "keep_within_days": "7",
    }
    # The tree object and both files.
    assert {row.digest for row in record} == {
        Digest.of(b"a"),
        Digest.of(b"b"),
        Digest.parse(latest_metadata(instance, "build")["digest"]),
    }
    assert latest_metadata(instance, "build")["record"] == str(found)
    (daily_record,) = (records / "assets" / "daily" / "2026-12-01").glob("*.parquet")
    assert read_manifest(daily_record).labels["partition"] == "2026-12-01"
    # Why is the file live? The tree's record names it.
    assert [info.location for info in manifests_naming(Digest.of(b"b"), records)] == [str(found)]


def latest_metadata(instance: DagsterInstance, key: str) -> dict[str, Any]:
    from dagster import AssetKey

    (record,) = instance.fetch_materializations(AssetKey(key), limit=1).records
    metadata = record.asset_materialization.metadata  # type: ignore[union-attr]
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def test_bad_retention_settings_fail_at_configuration(resource: S3RepoResource) -> None:
    with pytest.raises(Exception, match="keep_last is at least 1"):
        S3RepoIOManager(repository=resource, keep_last=0)
    with pytest.raises(Exception, match="keep_within_days is 0 or more"):
        S3RepoIOManager(repository=resource, keep_within_days=-1)
    with pytest.raises(Exception, match="inside the objects/ area"):
        S3RepoIOManager(repository=resource, manifests="s3://bucket/artifacts/objects/records/")


def collect(
    defs: Definitions, instance: DagsterInstance, manifests: list[str], dry_run: bool
) -> Any:
    config = {"ops": {"plan_collection": {"config": {"manifests": manifests, "dry_run": dry_run}}}}
    result = defs.get_job_def("collect_job").execute_in_process(
        run_config=config, instance=instance, raise_on_error=False
    )
    assert result.success, [
        e.event_specific_data.error.message  # type: ignore[union-attr]
        for e in result.all_events
        if e.event_type == DagsterEventType.STEP_FAILURE
    ]
    return result


def step_metadata(result: Any, step: str) -> dict[str, Any]:
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_OUTPUT and event.step_key == step:
            data = event.step_output_data.metadata
            return {key: getattr(value, "value", value) for key, value in data.items()}
    raise AssertionError(f"no output from {step}")


def test_retention_retires_the_oldest_and_collection_deletes_only_what_they_alone_named(
    resource: S3RepoResource,
    core: S3Repository,
    instance: DagsterInstance,
    moto_server: LocalS3,
    tmp_path: Path,
) -> None:
    """Five materializations, keep_last 2 and nothing kept by age: past the grace, the
    three oldest records are retired and exactly their own bytes are collected; the
    bytes every materialization shares, and the two newest, stay."""
    shared = tmp_path / "shared.bin"
    shared.write_bytes(b"the same every time")
    version = {"n": 0}
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "shared.bin").write_bytes(shared.read_bytes())

    @asset(metadata={"s3repo/keep_last": 2, "s3repo/keep_within_days": 0})
    def model() -> Path:
        (tree / "weights.bin").write_bytes(f"weights v{version['n']}".encode())
        return tree

    records = tmp_path / "records"
    manager = io_manager(resource, records, keep_last=3, keep_within_days=7)
    defs = build_definitions(resource, io_manager=manager, assets=[model])
    for n in range(5):
        version["n"] = n
        materialize([model], instance=instance, resources={"io_manager": manager})
    weights = [Digest.of(f"weights v{n}".encode()) for n in range(5)]
    assert all(present(core, digest) for digest in weights)

    moto_server.let_time_pass(GRACE + 5)  # every record and object is past the grace
    snapshot = tmp_path / "ingested.parquet"  # what other producers keep: nothing here
    write_manifest(snapshot, [], created_at=core.server_now())

    dry = collect(defs, instance, [str(snapshot)], dry_run=True)
    planned = step_metadata(dry, "plan_collection")
    assert (planned["records to retire"], planned["records kept"]) == (3, 2)
    assert len(list(records.glob("assets/model/_/*.parquet"))) == 5  # a dry run retires none
    assert step_metadata(dry, "report_collection")["objects to collect"] == 6  # 3 weights, 3 trees

    real = collect(defs, instance, [str(snapshot)], dry_run=False)
    assert step_metadata(real, "plan_collection")["records retired"] == 3
    assert len(list(records.glob("assets/model/_/*.parquet"))) == 2
    assert step_metadata(real, "report_collection")["objects collected"] == 6
    # By default one step collects every shard (its listers are threads, not steps).
    shard_steps = [e.step_key for e in real.all_events if e.is_step_success]
    assert [key for key in shard_steps if key.startswith("collect_shard")] == ["collect_shard[all]"]
    assert [present(core, digest) for digest in weights] == [False, False, False, True, True]
    assert present(core, Digest.of(shared.read_bytes()))
    # The collection's own outputs went through the IO manager, recorded by run.
    assert list(records.glob(f"runs/{real.run_id}/*.parquet"))


def test_a_copy_of_the_kept_records_stands_for_them_and_is_made_again_after_retention(
    resource: S3RepoResource,
    core: S3Repository,
    instance: DagsterInstance,
    moto_server: LocalS3,
    tmp_path: Path,
) -> None:
    """With ``compacted`` set, each collection copies the records retention kept into one
    sorted snapshot and its shard steps read that, not every record; made after
    retention, the copy never keeps a retired record's objects live."""
    version = {"n": 0}

    @asset(metadata={"s3repo/keep_last": 2, "s3repo/keep_within_days": 0})
    def model() -> bytes:
        return f"weights v{version['n']}".encode()

    records, copies = tmp_path / "records", f"{tmp_path / 'copies'}/"
    manager = S3RepoIOManager(
        repository=resource, manifests=str(records), compacted=copies, keep_within_days=0
    )
    defs = build_definitions(resource, io_manager=manager, assets=[model])
    snapshot = tmp_path / "ingested.parquet"
    weights = [Digest.of(f"weights v{n}".encode()) for n in range(6)]

    def materialize_and_collect(versions: range) -> Any:
        for n in versions:
            version["n"] = n
            materialize([model], instance=instance, resources={"io_manager": manager})
        moto_server.let_time_pass(GRACE + 5)  # every record and object is past the grace
        write_manifest(snapshot, [], created_at=core.server_now())
        return collect(defs, instance, [str(snapshot)], dry_run=False)

    first = materialize_and_collect(range(4))
    planned = step_metadata(first, "plan_collection")
    assert planned["records retired"] == 2
    (copy,) = Path(copies).iterdir()
    assert planned["records copied into"] == str(copy)
    # The plan reads the snapshot and the copy; no record is read as it is (every one
    # was written well before the grace ahead of the listing, by moto's moved clock).
    assert planned["records read as they are"] == 0
    assert planned["manifests"].splitlines() == [f"- `{snapshot}`", f"- `{copy}`"]
    held = read_manifest(copy)
    assert held.kind == "snapshot"
    assert {weights[2], weights[3]} <= {r.digest for r in held}
    assert [present(core, d) for d in weights[:4]] == [False, False, True, True]

    # Two more: v2 and v3 retire. The first copy named them; the new one does not.
    second = materialize_and_collect(range(4, 6))
    assert step_metadata(second, "plan_collection")["records retired"] >= 2
    (new_copy,) = Path(copies).iterdir()
    assert new_copy != copy
    assert [present(core, d) for d in weights] == [False] * 4 + [True, True]


# -- asset checks ----------------------------------------------------------------------------


def check_results(result: Any) -> dict[str, Any]:
    """Each asset check's evaluation in a run, by asset."""
    found = {}
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            data = event.event_specific_data
            found[data.asset_key.to_user_string()] = data
    return found


def test_asset_checks_pass_then_fail_on_a_missing_or_tampered_object(
    resource: S3RepoResource, core: S3Repository, instance: DagsterInstance, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f.txt").write_bytes(b"file in a tree")

    @asset
    def blob() -> bytes:
        return b"a blob to tamper with"

    @asset
    def folder() -> Path:
        return tree

    manager = io_manager(resource, tmp_path / "records")
    resources = {"io_manager": manager, "repository": resource}
    checks = stored_output_checks([blob, folder], verify=True)
    quick = stored_output_checks([blob], name="stat_only")
    everything = [blob, folder, *checks, *quick]
    first = check_results(materialize(everything, instance=instance, resources=resources))
    assert [first[name].passed for name in ("blob", "folder")] == [True, True]

    blob_digest = Digest.of(b"a blob to tamper with")
    client = core.client
    # Same size, other bytes: only re-hashing sees it.
    client.put_object(
        Bucket=core.bucket, Key=core.layout.object_key(blob_digest), Body=b"A blob to tamper with"
    )
    client.delete_object(
        Bucket=core.bucket, Key=core.layout.object_key(Digest.of(b"file in a tree"))
    )
    from dagster import AssetSelection

    selection = AssetSelection.checks_for_assets(blob, folder)
    again = materialize(
        everything,
        instance=instance,
        resources=resources,
        selection=selection,
        raise_on_error=False,
    )
    results = {}
    for event in again.all_events:
        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            data = event.event_specific_data
            results[data.check_name, data.asset_key.to_user_string()] = data
    assert not results["stored_in_s3repo", "blob"].passed
    assert "does not verify" in results["stored_in_s3repo", "blob"].description
    assert results["stat_only", "blob"].passed  # the size is right
    assert not results["stored_in_s3repo", "folder"].passed
    assert (
        f"{Digest.of(b'file in a tree')} is missing"
        in results["stored_in_s3repo", "folder"].description
    )
