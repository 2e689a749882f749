"""S3RepoIOManager: assets and op outputs materialised into s3repo, on a real Dagster
instance in a temporary directory, against the real test S3 servers.

Most tests run on moto; the round trip of every kind of value runs on every server of
the session (``s3server``), so that the JuiceFS gateway is covered too.
"""

# No "from __future__ import annotations": Dagster reads the assets' annotations at run time.
import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetMaterialization,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    DynamicOut,
    DynamicOutput,
    EnvVar,
    ExecuteInProcessResult,
    ReexecutionOptions,
    StaticPartitionsDefinition,
    asset,
    execute_job,
    instance_for_test,
    job,
    materialize,
    op,
    reconstructable,
)
from dagster._serdes import serialize_value

from devkit.localserver import LocalS3
from repo_pipelines import S3RepoIOManager, S3RepoResource, load_asset_value
from s3repo_core import Digest, NotExistError, S3Repository

SECRET_VAR = "S3REPO_TEST_IO_SECRET"


@pytest.fixture
def instance() -> DagsterInstance:
    """An in-memory instance: quick to make, for tests that only read its event log."""
    return DagsterInstance.ephemeral()


@pytest.fixture
def disk_instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    """An instance with its storage (SQLite) in a temporary directory, as a deployment has."""
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield instance


_clients: dict[str, Any] = {}


def resource_for(server: LocalS3, monkeypatch: pytest.MonkeyPatch) -> S3RepoResource:
    """The repository in a fresh bucket, its secret given as an EnvVar (as it should be)."""
    monkeypatch.setenv(SECRET_VAR, server.secret_key)
    client = _clients.setdefault(server.endpoint_url, server.client())
    bucket = f"io-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    return S3RepoResource(
        bucket=bucket,
        prefix="assets",
        endpoint_url=server.endpoint_url,
        region=server.region,
        access_key_id=server.access_key,
        secret_access_key=EnvVar(SECRET_VAR),
        part_size_mib=5,
    )


@pytest.fixture
def resource(moto_server: LocalS3, monkeypatch: pytest.MonkeyPatch) -> S3RepoResource:
    return resource_for(moto_server, monkeypatch)


def core_of(resource: S3RepoResource) -> S3Repository:
    """The repository the IO manager writes to, with the client it uses (in this process)."""
    return resource.process_config_and_initialize().repository()


def object_keys(repo: S3Repository) -> set[str]:
    listing = repo.client.list_objects_v2(Bucket=repo.bucket, Prefix=repo.layout.objects)
    return {item["Key"] for item in listing.get("Contents", [])}


def materializations(instance: DagsterInstance, key: str) -> list[Any]:
    """Every materialization of the asset, oldest first."""
    records = instance.fetch_materializations(AssetKey(key), limit=100, ascending=True).records
    return [record.asset_materialization for record in records]


def latest_metadata(instance: DagsterInstance, key: str) -> dict[str, Any]:
    materialization = materializations(instance, key)[-1]
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def loaded_inputs(result: ExecuteInProcessResult) -> dict[tuple[str, str], dict[str, Any]]:
    """The metadata of each LOADED_INPUT event, by (step, input)."""
    found = {}
    for event in result.all_events:
        if event.event_type == DagsterEventType.LOADED_INPUT:
            data = event.event_specific_data
            found[(event.step_key, data.input_name)] = {
                k: getattr(v, "value", v) for k, v in data.metadata.items()
            }
    return found


def input_lines(instance: DagsterInstance, run_id: str) -> list[str]:
    """What the IO manager logged about the inputs it loaded in a run."""
    return [
        entry.user_message
        for entry in instance.all_logs(run_id)
        if entry.user_message.startswith("input ")
    ]


class KeyLog:
    """The requests a client sends, with the key each names."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests: list[tuple[str, str]] = []
        client.meta.events.register("before-call.s3", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.requests.append((model.name, params.get("url_path", "")))

    def writes(self) -> list[tuple[str, str]]:
        kinds = ("PutObject", "UploadPart", "CreateMultipartUpload", "CopyObject", "UploadPartCopy")
        return [(name, path) for name, path in self.requests if name in kinds]

    def close(self) -> None:
        self.client.meta.events.unregister("before-call.s3", self._record)


def listing(root: Path) -> dict[str, tuple[bytes, bool]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), bool(p.stat().st_mode & stat.S_IXUSR))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def make_inputs(root: Path) -> tuple[Path, Path]:
    """A model file and a build directory (a nested file, an executable)."""
    model = root / "model.bin"
    model.write_bytes(b"weights " * 1000)
    build = root / "build"
    (build / "lib" / "deep").mkdir(parents=True)
    (build / "lib" / "deep" / "nested.txt").write_bytes(b"nested\n")
    (build / "run.sh").write_bytes(b"#!/bin/sh\n")
    (build / "run.sh").chmod(0o755)
    return model, build


def value_assets(model: Path, build: Path, seen: dict[str, Any]) -> list[Any]:
    """One asset per kind of value, and one that loads each as its annotation asks."""

    @asset
    def raw() -> bytes:
        return b"raw bytes"

    @asset
    def model_file() -> Path:
        return model

    @asset
    def build_dir() -> Path:
        return build

    @asset
    def table() -> pa.Table:
        return pa.table({"n": [1, 2, 3], "s": ["a", "b", "c"]})

    @asset
    def frame() -> pd.DataFrame:
        return pd.DataFrame({"x": [1.5, 2.5]})

    @asset
    def settings() -> dict:
        return {"lr": 0.1, "layers": [3, 4]}

    @asset
    def uses_all(
        raw: bytes,
        model_file: Path,
        build_dir: Path,
        table: pa.Table,
        frame: pd.DataFrame,
        settings: dict,
    ) -> None:
        seen.update(
            raw=raw,
            model_file=model_file,
            build_dir=build_dir,
            table=table,
            frame=frame,
            settings=settings,
        )

    return [raw, model_file, build_dir, table, frame, settings, uses_all]


# -- each kind of value ------------------------------------------------------------------


def test_each_kind_of_value_round_trips_through_assets(
    s3server: LocalS3,
    monkeypatch: pytest.MonkeyPatch,
    disk_instance: DagsterInstance,
    tmp_path: Path,
) -> None:
    resource = resource_for(s3server, monkeypatch)
    model, build = make_inputs(tmp_path)
    seen: dict[str, Any] = {}
    manager = S3RepoIOManager(repository=resource, work_dir=str(tmp_path / "work"))
    (tmp_path / "work").mkdir()

    result = materialize(
        value_assets(model, build, seen), resources={"io_manager": manager}, instance=disk_instance
    )

    assert result.success
    assert seen["raw"] == b"raw bytes"
    assert seen["model_file"].read_bytes() == model.read_bytes()
    assert seen["model_file"].name == "model.bin" and seen["model_file"] != model
    assert seen["build_dir"].name == "build" and listing(seen["build_dir"]) == listing(build)
    assert listing(seen["build_dir"])["run.sh"][1] is True  # the execute bit came back
    assert seen["table"].equals(pa.table({"n": [1, 2, 3], "s": ["a", "b", "c"]}))
    assert seen["frame"].equals(pd.DataFrame({"x": [1.5, 2.5]}))
    assert seen["settings"] == {"lr": 0.1, "layers": [3, 4]}
    for local in (seen["model_file"], seen["build_dir"]):
        assert local.is_relative_to(tmp_path / "work")

    repo = core_of(resource)
    formats = {}
    for key in ("raw", "model_file", "build_dir", "table", "frame", "settings"):
        meta = latest_metadata(disk_instance, key)
        formats[key] = meta["format"]
        assert meta["url"] == repo.url == f"s3r://{resource.bucket}/assets"
        assert meta["stored_before"] is False
        assert repo.stat(meta["digest"]).size == meta["size"]
    assert formats == {
        "raw": "bytes",
        "model_file": "file",
        "build_dir": "tree",
        "table": "parquet",
        "frame": "parquet",
        "settings": "pickle",
    }
    assert latest_metadata(disk_instance, "raw")["digest"] == str(Digest.of(b"raw bytes"))
    assert latest_metadata(disk_instance, "table")["dagster/row_count"] == 3
    tree = latest_metadata(disk_instance, "build_dir")
    assert (tree["files"], tree["files_size"], tree["name"]) == (2, 17, "build")


def test_an_unchanged_rematerialization_uploads_nothing(
    resource: S3RepoResource, instance: DagsterInstance, tmp_path: Path
) -> None:
    model, build = make_inputs(tmp_path)
    assets = value_assets(model, build, {})
    manager = S3RepoIOManager(repository=resource)
    first = materialize(assets, resources={"io_manager": manager}, instance=instance)
    repo = core_of(resource)
    stored = object_keys(repo)
    log = KeyLog(repo.client)
    try:
        again = materialize(assets, resources={"io_manager": manager}, instance=instance)
    finally:
        log.close()

    assert first.success and again.success
    assert log.writes() == []
    assert log.requests, "the log saw no request: it is not on the IO manager's client"
    assert object_keys(repo) == stored
    for key in ("raw", "model_file", "build_dir", "table", "frame", "settings"):
        older, newer = materializations(instance, key)
        assert newer.metadata["digest"] == older.metadata["digest"]
        assert newer.metadata["stored_before"].value is True


def repository_observations(result: ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """The metadata of each observation of the repository asset, by the output it is of."""
    found = {}
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_OBSERVATION:
            observed = event.event_specific_data.asset_observation
            assert observed.asset_key == AssetKey(["s3repo", "repository"])
            found[observed.description.split(":")[0]] = {
                k: getattr(v, "value", v) for k, v in observed.metadata.items()
            }
    return found


def test_each_output_logs_what_it_added_to_the_repository(
    resource: S3RepoResource, instance: DagsterInstance, tmp_path: Path
) -> None:
    model, build = make_inputs(tmp_path)
    assets = value_assets(model, build, {})
    manager = S3RepoIOManager(repository=resource)
    first = repository_observations(
        materialize(assets, resources={"io_manager": manager}, instance=instance)
    )
    (build / "run.sh").write_bytes(b"#!/bin/sh\necho changed\n")  # 25 bytes
    again = repository_observations(
        materialize(assets, resources={"io_manager": manager}, instance=instance)
    )

    names = {"raw", "model_file", "build_dir", "table", "frame", "settings"}
    assert set(first) == set(again) == names
    assert first["raw"] == {
        "repository": core_of(resource).url,
        "objects_added": 1,
        "bytes_added": len(b"raw bytes"),
        "dedup_hits": 0,
        "bytes_deduplicated": 0,
    }
    assert first["build_dir"]["objects_added"] == 3  # two files and the tree
    assert first["build_dir"]["dedup_hits"] == 0
    for name in names - {"build_dir"}:
        assert again[name]["objects_added"] == again[name]["bytes_added"] == 0
        assert again[name]["dedup_hits"] == 1
        assert again[name]["bytes_deduplicated"] == first[name]["bytes_added"]
    tree = again["build_dir"]  # the new run.sh and a new tree; nested.txt was stored
    assert (tree["objects_added"], tree["dedup_hits"], tree["bytes_deduplicated"]) == (2, 1, 7)
    assert tree["bytes_added"] > 25


def test_the_data_version_is_the_digest(
    resource: S3RepoResource, instance: DagsterInstance
) -> None:
    """The canary for the internal call behind ``_set_data_version``: it fails the day
    Dagster stops taking the data version from the step context."""

    @asset
    def versioned() -> bytes:
        return b"version me"

    result = materialize(
        [versioned],
        resources={"io_manager": S3RepoIOManager(repository=resource)},
        instance=instance,
    )

    [materialization] = result.asset_materializations_for_node("versioned")
    assert materialization.tags["dagster/data_version"] == str(Digest.of(b"version me"))
    assert materialization.metadata["digest"].value == str(Digest.of(b"version me"))
    assert len(materializations(instance, "versioned")) == 1  # no extra materialization


# -- which object an input is -----------------------------------------------------------


def test_a_downstream_asset_loads_the_materialization_it_depends_on(
    resource: S3RepoResource, instance: DagsterInstance
) -> None:
    version = {"upstream": b"first"}
    seen: list[bytes] = []
    other = b"reported meanwhile"
    core_of(resource).put(other)

    @asset
    def upstream() -> bytes:
        return version["upstream"]

    @asset(deps=[upstream])
    def meddle(context: AssetExecutionContext) -> None:
        """Between the two steps, another materialization of upstream becomes the latest."""
        if version["upstream"] == b"first":
            context.instance.report_runless_asset_event(
                AssetMaterialization(
                    "upstream", metadata={"digest": str(Digest.of(other)), "format": "bytes"}
                )
            )

    @asset(deps=[meddle])
    def downstream(upstream: bytes) -> bytes:
        seen.append(upstream)
        return upstream.upper()

    assets = [upstream, meddle, downstream]
    resources = {"io_manager": S3RepoIOManager(repository=resource)}
    together = materialize(assets, resources=resources, instance=instance)
    version["upstream"] = b"second"
    middle = materialize(assets, selection=[upstream], resources=resources, instance=instance)
    alone = materialize(assets, selection=[downstream], resources=resources, instance=instance)

    # Within one run, the output of this run's upstream step, though another became the
    # latest meanwhile; alone, the latest materialization (made by the run in between).
    assert seen == [b"first", b"second"]
    assert input_lines(instance, together.run_id) == [
        f"input upstream: bytes {Digest.of(b'first')}, stored by run {together.run_id}"
    ]
    assert [m.metadata["digest"].value for m in materializations(instance, "upstream")] == [
        str(Digest.of(d)) for d in (b"first", other, b"second")
    ]
    assert input_lines(instance, alone.run_id) == [
        f"input upstream: bytes {Digest.of(b'second')}, stored by run {middle.run_id}"
    ]
    assert latest_metadata(instance, "downstream")["digest"] == str(Digest.of(b"SECOND"))


def test_partitioned_assets_load_their_own_partition(
    resource: S3RepoResource, instance: DagsterInstance
) -> None:
    parts = StaticPartitionsDefinition(["a", "b"])
    seen: dict[str, Any] = {}

    @asset(partitions_def=parts)
    def daily(context: AssetExecutionContext) -> bytes:
        return f"data of {context.partition_key}".encode()

    @asset(partitions_def=parts)
    def per_part(context: AssetExecutionContext, daily: bytes) -> None:
        seen[context.partition_key] = daily

    @asset(ins={"daily": AssetIn()})
    def all_parts(daily: dict[str, bytes]) -> None:
        seen["all"] = daily

    resources = {"io_manager": S3RepoIOManager(repository=resource)}
    for key in ("a", "b"):
        result = materialize(
            [daily, per_part], partition_key=key, resources=resources, instance=instance
        )
        assert result.success
    combined = materialize(
        [daily, per_part, all_parts], selection=[all_parts], resources=resources, instance=instance
    )

    assert combined.success
    assert seen == {"a": b"data of a", "b": b"data of b", "all": seen["all"]}
    assert seen["all"] == {"a": b"data of a", "b": b"data of b"}
    [materialization] = [m for m in materializations(instance, "daily") if m.partition == "b"]
    assert materialization.tags["dagster/data_version"] == str(Digest.of(b"data of b"))
    assert load_asset_value(instance, resource, "daily", "b") == b"data of b"
    with pytest.raises(NotExistError, match="partitioned"):
        load_asset_value(instance, resource, "daily")


def test_op_outputs_and_dynamic_outputs_round_trip(
    resource: S3RepoResource, instance: DagsterInstance
) -> None:
    seen: dict[str, Any] = {}

    @op(out=DynamicOut(dict))
    def fan_out() -> Iterator[DynamicOutput[dict]]:
        for shard in ("0", "1", "2"):
            yield DynamicOutput({"shard": shard}, mapping_key=shard)

    @op
    def handle(piece: dict) -> bytes:
        return piece["shard"].encode() * 3

    @op
    def gather(pieces: list[bytes]) -> None:
        seen["gathered"] = sorted(pieces)

    @job(resource_defs={"io_manager": S3RepoIOManager(repository=resource)})
    def fanned() -> None:
        gather(fan_out().map(handle).collect())

    result = fanned.execute_in_process(instance=instance)

    assert result.success
    assert seen["gathered"] == [b"000", b"111", b"222"]
    inputs = loaded_inputs(result)
    assert inputs[("handle[1]", "piece")]["format"] == "pickle"
    assert inputs[("handle[1]", "piece")]["from_run"] == result.run_id


@op
def produce_once() -> bytes:
    return b"made once, used twice"


@op
def consume_on_retry(made: bytes) -> None:
    flag = Path(os.environ["S3REPO_TEST_RETRY_FLAG"])
    if not flag.exists():
        flag.write_text("failed once")
        raise RuntimeError("a passing failure")
    assert made == b"made once, used twice"


def retried_job() -> Any:
    """A job that fails at its second step once: rebuilt by name for re-execution."""
    resource = S3RepoResource.model_validate_json(os.environ["S3REPO_TEST_RETRY_RESOURCE"])

    @job(resource_defs={"io_manager": S3RepoIOManager(repository=resource)})
    def retried() -> None:
        consume_on_retry(produce_once())

    return retried


def test_a_re_execution_from_failure_loads_what_the_first_run_stored(
    moto_server: LocalS3,
    monkeypatch: pytest.MonkeyPatch,
    disk_instance: DagsterInstance,
    tmp_path: Path,
) -> None:
    """Retrying a failed run runs only the failed step: its input is the output the
    first run stored, found in that run's events, and nothing is uploaded again."""
    resource = resource_for(moto_server, monkeypatch)
    fields = resource.model_dump() | {"secret_access_key": moto_server.secret_key}
    monkeypatch.setenv("S3REPO_TEST_RETRY_RESOURCE", json.dumps(fields))
    monkeypatch.setenv("S3REPO_TEST_RETRY_FLAG", str(tmp_path / "failed-once"))
    in_process = {"execution": {"config": {"in_process": {}}}}

    first = execute_job(reconstructable(retried_job), disk_instance, run_config=in_process)
    repo = core_of(resource)
    log = KeyLog(repo.client)
    try:
        again = execute_job(
            reconstructable(retried_job),
            disk_instance,
            run_config=in_process,
            reexecution_options=ReexecutionOptions.from_failure(first.run_id, disk_instance),
        )
    finally:
        log.close()

    assert not first.success and again.success
    assert [e.step_key for e in again.all_events if e.is_step_start] == ["consume_on_retry"]
    loaded = input_lines(disk_instance, again.run_id)
    assert any(f"stored by run {first.run_id}" in line for line in loaded), loaded
    assert log.requests, "the log saw no request: it is not on the IO manager's client"
    assert [w for w in log.writes() if "/objects/" in w[1]] == []


# -- outside a run, and what is refused ----------------------------------------------------


def test_loading_outside_a_run(
    resource: S3RepoResource, instance: DagsterInstance, tmp_path: Path
) -> None:
    @asset
    def report() -> bytes:
        return b"a,b\n1,2\n"

    defs = Definitions(
        assets=[report], resources={"io_manager": S3RepoIOManager(repository=resource)}
    )
    assert materialize([report], resources=defs.resources, instance=instance).success

    assert defs.load_asset_value("report", instance=instance) == b"a,b\n1,2\n"
    local = defs.load_asset_value("report", instance=instance, python_type=Path)
    assert isinstance(local, Path) and local.read_bytes() == b"a,b\n1,2\n"
    assert load_asset_value(instance, resource, "report") == b"a,b\n1,2\n"
    copy = load_asset_value(instance, resource, ["report"], as_type=Path, work_dir=str(tmp_path))
    assert isinstance(copy, Path) and copy.is_relative_to(tmp_path)


def test_an_asset_stored_by_another_io_manager_is_not_guessed_at(
    resource: S3RepoResource, instance: DagsterInstance, tmp_path: Path
) -> None:
    @asset
    def elsewhere() -> bytes:
        return b"in the file system"

    assert materialize([elsewhere], instance=instance).success  # Dagster's default IO manager

    with pytest.raises(NotExistError, match="not stored by S3RepoIOManager"):
        load_asset_value(instance, resource, "elsewhere")
    with pytest.raises(NotExistError, match="no materialization"):
        load_asset_value(instance, resource, "never_materialised")


def test_pickle_is_refused_when_not_allowed(
    resource: S3RepoResource, instance: DagsterInstance
) -> None:
    @asset
    def settings() -> dict:
        return {"lr": 0.1}

    result = materialize(
        [settings],
        resources={"io_manager": S3RepoIOManager(repository=resource, allow_pickle=False)},
        instance=instance,
        raise_on_error=False,
    )

    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    text = serialize_value(failure)
    assert "PickleRefusedError" in text and "allow_pickle=False" in text
    assert object_keys(core_of(resource)) == set()
    assert materializations(instance, "settings") == []


def test_an_unannotated_asset_that_returns_none_is_told_how_to_store_nothing(
    resource: S3RepoResource, instance: DagsterInstance
) -> None:
    @asset
    def side_effect():  # type: ignore[no-untyped-def]  # unannotated on purpose
        return None

    result = materialize(
        [side_effect],
        resources={"io_manager": S3RepoIOManager(repository=resource, allow_pickle=False)},
        instance=instance,
        raise_on_error=False,
    )

    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "annotate the function's return as None (-> None)" in serialize_value(failure)


def test_no_secret_in_any_event(
    resource: S3RepoResource, disk_instance: DagsterInstance, tmp_path: Path
) -> None:
    secret = resource.process_config_and_initialize().secret_access_key
    assert secret  # the check below means something only with a real secret
    model, build = make_inputs(tmp_path)
    manager = S3RepoIOManager(repository=resource)
    ok = materialize(
        value_assets(model, build, {}), resources={"io_manager": manager}, instance=disk_instance
    )

    @asset
    def refused() -> dict:
        return {}

    failed = materialize(
        [refused],
        resources={"io_manager": S3RepoIOManager(repository=resource, allow_pickle=False)},
        instance=disk_instance,
        raise_on_error=False,
    )

    assert ok.success and not failed.success
    for run_id in (ok.run_id, failed.run_id):
        events = disk_instance.all_logs(run_id)
        assert events and all(secret not in serialize_value(event) for event in events)
    assert secret not in repr(manager) and secret not in str(manager.model_dump())
    stored = [p for p in (tmp_path / "dagster").rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in stored)  # the instance's storage is there
    assert all(secret.encode() not in p.read_bytes() for p in stored)
