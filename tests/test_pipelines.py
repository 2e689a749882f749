"""Every job of the code location, executed in process against the real test S3 servers.

The resource shortens the repository's grace period to seconds, as the demo does, so
that a collection can find objects old enough to delete within a test.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterInvalidConfigError,
    DefaultScheduleStatus,
    Definitions,
    ExecuteInProcessResult,
    RunRequest,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    job,
    op,
    validate_run_config,
)
from inventory_kit import listing, write_inventory

from devkit.localserver import LocalS3
from devkit.pipelines_demo import failure_message
from repo_pipelines import S3RepoResource, build_definitions
from repo_pipelines.collection import report_table
from repo_pipelines.ingest import ingest
from repo_pipelines.manifests import manifest_destination
from repo_pipelines.schedules import DEFAULT_CRON, collection_schedule
from s3repo_core import (
    Digest,
    ManifestRow,
    S3Repository,
    make_client,
    read_manifest,
    write_manifest,
)
from s3repo_core import _planning as planning
from s3repo_core._client import client_for, shared_client, using_client

GRACE = 5.0
SHORT_WINDOWS = {"grace_seconds": GRACE, "refresh_window_seconds": 1.0, "settle_seconds": 1.0}


def resource_for(server: LocalS3, bucket: str, **overrides: Any) -> S3RepoResource:
    settings: dict[str, Any] = {
        "bucket": bucket,
        "prefix": "pipelines",
        "endpoint_url": server.endpoint_url,
        "region": server.region,
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
        "part_size_mib": 5,
        **SHORT_WINDOWS,
    }
    settings.update(overrides)
    return S3RepoResource(**settings)


@pytest.fixture
def resource(s3server: LocalS3, bucket: str) -> S3RepoResource:
    return resource_for(s3server, bucket)


@pytest.fixture
def defs(resource: S3RepoResource) -> Definitions:
    return build_definitions(resource)


@pytest.fixture
def core(resource: S3RepoResource) -> S3Repository:
    """The same repository, used directly to seed and check what the jobs did."""
    return resource.repository()


def run(defs: Definitions, name: str, ops: dict[str, Any]) -> ExecuteInProcessResult:
    return defs.get_job_def(name).execute_in_process(run_config={"ops": ops}, raise_on_error=False)


def metadata(result: ExecuteInProcessResult, step: str) -> dict[str, Any]:
    """The metadata of ``step``'s output, as plain values."""
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_OUTPUT and event.step_key == step:
            data = event.step_output_data.metadata
            return {key: getattr(value, "value", value) for key, value in data.items()}
    raise AssertionError(f"no output from {step}")


def failure_text(result: ExecuteInProcessResult) -> str:
    """Everything the run recorded about its failed steps: message, metadata and trace."""
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            texts.append(data.error.to_string() if data.error else "")
            if data.user_failure_data is not None:
                texts.append(str(data.user_failure_data.metadata))
    assert texts, "no step failed"
    return "\n".join(texts)


def stored_keys(core: S3Repository) -> set[str]:
    listing = core.client.list_objects_v2(Bucket=core.bucket, Prefix=core.layout.objects)
    return {item["Key"] for item in listing.get("Contents", [])}


# -- ingest ---------------------------------------------------------------------------


def test_ingest_puts_files_and_directories_and_outputs_rows_in_order(
    defs: Definitions, core: S3Repository, tmp_path: Path
) -> None:
    (tmp_path / "build" / "sub").mkdir(parents=True)
    (tmp_path / "build" / "sub" / "a.bin").write_bytes(b"a" * 1000)
    (tmp_path / "build" / "z.bin").write_bytes(b"zz")
    (tmp_path / "single.txt").write_bytes(b"a" * 1000)  # the same content as sub/a.bin
    paths = [str(tmp_path / "build"), str(tmp_path / "single.txt")]

    result = run(defs, "ingest_job", {"ingest": {"config": {"paths": paths}}})

    assert result.success
    rows: list[ManifestRow] = result.output_for_node("ingest")
    assert [Path(r.source).name for r in rows] == ["a.bin", "z.bin", "single.txt"]
    for row in rows:
        data = Path(row.source).read_bytes()
        assert row.digest == Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())
        assert core.stat(row.digest).size == row.size == len(data)
    meta = metadata(result, "ingest")
    assert (meta["objects"], meta["distinct digests"], meta["bytes"]) == (3, 2, 2002)
    assert meta["repository"] == core.url
    assert "`" + str(rows[1].digest) + "`" in meta["objects ingested"]
    assert result.output_for_node("write_manifest") is None  # no manifest asked for


def test_ingest_observes_what_it_added_and_what_was_stored_already(
    defs: Definitions, core: S3Repository, tmp_path: Path
) -> None:
    (tmp_path / "a").write_bytes(b"a" * 1000)
    (tmp_path / "copy of a").write_bytes(b"a" * 1000)
    (tmp_path / "b").write_bytes(b"bb")
    config = {"ingest": {"config": {"paths": [str(tmp_path)]}}}
    (first,) = observations(run(defs, "ingest_job", config))
    (tmp_path / "c").write_bytes(b"ccc")
    (again,) = observations(run(defs, "ingest_job", config))

    assert first == {
        "repository": core.url,
        "objects_added": 2,  # two contents; the copy is the same object
        "bytes_added": 1002,
        "dedup_hits": 0,
        "bytes_deduplicated": 0,
    }
    assert (again["objects_added"], again["bytes_added"]) == (1, 3)
    assert (again["dedup_hits"], again["bytes_deduplicated"]) == (2, 1002)


def test_a_long_ingest_logs_its_progress(
    defs: Definitions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("repo_pipelines.ingest.PROGRESS_SECONDS", 0.0)
    for n in range(3):
        (tmp_path / f"f{n}").write_bytes(b"x" * 1024)
    instance = DagsterInstance.ephemeral()

    result = defs.get_job_def("ingest_job").execute_in_process(
        run_config={"ops": {"ingest": {"config": {"paths": [str(tmp_path)]}}}},
        instance=instance,
    )

    messages = [record.user_message for record in instance.all_logs(result.run_id)]
    progress = [m.split(",")[0] for m in messages if m.endswith(" MiB/s") and " of 3 files" in m]
    # Each phase logs its count as it goes (not at the end: the result says that).
    assert progress == [
        "hashed 1 of 3 files",
        "hashed 2 of 3 files",
        "stored 1 of 3 files",
        "stored 2 of 3 files",
    ]


def test_ingest_takes_bytes_from_an_upstream_op(
    resource: S3RepoResource, core: S3Repository
) -> None:
    blobs = {"report.csv": b"a,b\n1,2\n", "plot.png": b"\x89PNG..."}

    @op
    def produce() -> dict[str, bytes]:
        return blobs

    @job(resource_defs={"repository": resource})
    def produce_and_ingest() -> None:
        ingest(produce())

    result = produce_and_ingest.execute_in_process()

    rows: list[ManifestRow] = result.output_for_node("ingest")
    assert [(r.source, r.size) for r in rows] == [(n, len(d)) for n, d in blobs.items()]
    for row, data in zip(rows, blobs.values(), strict=True):
        with core.get(row.digest) as stream:
            assert stream.read() == data


def test_ingest_with_a_manifest_writes_the_rows_it_ingested(
    defs: Definitions, bucket: str, tmp_path: Path
) -> None:
    for n in range(3):
        (tmp_path / f"f{n}").write_bytes(bytes([n]) * (n + 1))
    ops = {
        "ingest": {"config": {"paths": [str(tmp_path)]}},
        "write_manifest": {"config": {"dest": f"s3://{bucket}/manifests/"}},
    }

    result = run(defs, "ingest_job", ops)

    assert result.success
    location = result.output_for_node("write_manifest")
    name = rf"manifest-\d{{8}}T\d{{6}}Z-{result.run_id[:8]}\.parquet"
    assert re.fullmatch(rf"s3://{bucket}/manifests/{name}", location)
    manifest = read_manifest(location)
    ingested = result.output_for_node("ingest")
    assert list(manifest) == sorted(ingested, key=lambda row: row.digest.raw)
    assert manifest.created_by == f"dagster run {result.run_id}"
    assert metadata(result, "write_manifest")["live bytes"] == 1 + 2 + 3


@pytest.mark.parametrize("area", ["objects", "uploads", "collections"])
def test_ingest_refuses_to_write_its_manifest_into_the_repository_s_key_space(
    defs: Definitions, core: S3Repository, tmp_path: Path, area: str
) -> None:
    (tmp_path / "f").write_bytes(b"bytes")
    dest = f"s3://{core.bucket}/{core.prefix}/{area}/"
    ops = {
        "ingest": {"config": {"paths": [str(tmp_path)]}},
        "write_manifest": {"config": {"dest": dest}},
    }

    result = run(defs, "ingest_job", ops)

    assert not result.success
    message = failure_message(result)
    assert f"inside the {area}/ area of a repository's key space" in message, message
    assert "InvalidArgumentError" in failure_text(result)
    listed = core.client.list_objects_v2(Bucket=core.bucket, Prefix=f"{core.prefix}/{area}/")
    assert not [item["Key"] for item in listed.get("Contents", []) if "manifest" in item["Key"]]


def test_ingest_of_a_missing_path_fails_clearly_and_stores_nothing(
    defs: Definitions, core: S3Repository, tmp_path: Path
) -> None:
    (tmp_path / "real.bin").write_bytes(b"real")
    paths = [str(tmp_path / "real.bin"), str(tmp_path / "missing")]

    result = run(defs, "ingest_job", {"ingest": {"config": {"paths": paths}}})

    assert not result.success
    assert failure_message(result) == f"ingest failed: {tmp_path / 'missing'} does not exist"
    assert stored_keys(core) == set()


def test_ingest_of_a_directory_without_files_says_there_is_nothing_to_ingest(
    defs: Definitions, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    result = run(defs, "ingest_job", {"ingest": {"config": {"paths": [str(tmp_path)]}}})
    assert failure_message(result).startswith("ingest failed: nothing to ingest")


# -- manifests, fetch and stat --------------------------------------------------------


def test_manifest_job_looks_up_the_digests_in_config(
    defs: Definitions, core: S3Repository, tmp_path: Path
) -> None:
    digests = [core.put(b"one"), core.put(b"three")]
    dest = tmp_path / "live.parquet"
    config = {"dest": str(dest), "digests": [str(d) for d in digests], "source": "pinned"}

    result = run(defs, "manifest_job", {"write_manifest": {"config": config}})

    assert result.success
    rows = list(read_manifest(dest))
    assert rows == [ManifestRow(digests[0], 3, "pinned"), ManifestRow(digests[1], 5, "pinned")]


def test_a_manifest_destination_folder_gets_a_file_named_after_the_run(tmp_path: Path) -> None:
    now = datetime(2026, 11, 25, 3, 0, 1, tzinfo=UTC)
    name = "manifest-20261125T030001Z-0123abcd.parquet"
    for folder in (str(tmp_path), f"{tmp_path}/", "s3://bucket/manifests/"):
        expected = folder.rstrip("/") + "/" + name
        assert manifest_destination(folder, "0123abcd-ef", now) == expected
    assert manifest_destination("s3://b/live.parquet", "0123abcd", now) == "s3://b/live.parquet"
    assert manifest_destination(f"{tmp_path}/new.parquet", "x", now) == f"{tmp_path}/new.parquet"


def test_manifest_job_refuses_a_digest_that_is_not_stored(
    defs: Definitions, core: S3Repository, tmp_path: Path
) -> None:
    stored = core.put(b"stored")
    missing = Digest.of(b"never stored")
    dest = tmp_path / "live.parquet"
    config = {"dest": str(dest), "digests": [str(stored), str(missing)]}

    result = run(defs, "manifest_job", {"write_manifest": {"config": config}})

    assert not result.success
    assert f"1 of 2 digests are not in {core.url}: {missing}" in failure_message(result)
    assert not dest.exists()


def test_fetch_job_writes_the_verified_object(
    defs: Definitions, core: S3Repository, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 4000
    digest = core.put(data)
    dest = tmp_path / "out" / "model.bin"  # the directory is made

    result = run(
        defs, "fetch_job", {"fetch": {"config": {"digest": str(digest), "dest": str(dest)}}}
    )

    assert result.success
    assert dest.read_bytes() == data
    meta = metadata(result, "fetch")
    assert (meta["digest"], meta["bytes"], meta["verified"]) == (str(digest), len(data), True)
    assert meta["object"] == f"s3://{core.bucket}/pipelines/objects/{digest}"


def test_fetch_job_creates_the_file_as_the_umask_says(
    defs: Definitions, core: S3Repository, tmp_path: Path
) -> None:
    digest = core.put(b"fetched with the umask's mode\n" * 100)
    dest = tmp_path / "model.bin"
    before = os.umask(0o022)
    try:
        result = run(
            defs, "fetch_job", {"fetch": {"config": {"digest": str(digest), "dest": str(dest)}}}
        )
    finally:
        os.umask(before)
    assert result.success
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644


def test_fetch_job_of_a_missing_or_malformed_digest_fails_clearly(
    defs: Definitions, core: S3Repository, tmp_path: Path
) -> None:
    dest = tmp_path / "model.bin"
    missing = Digest.of(b"not there")

    result = run(
        defs, "fetch_job", {"fetch": {"config": {"digest": str(missing), "dest": str(dest)}}}
    )
    assert failure_message(result) == f"fetch {missing} failed: {missing} is not in {core.url}"

    # A malformed digest is refused as the run config is resolved: no run, no step.
    with pytest.raises(DagsterInvalidConfigError, match=r"ops\.fetch\.config\.digest: invalid"):
        run(defs, "fetch_job", {"fetch": {"config": {"digest": "sha256:XYZ", "dest": str(dest)}}})
    assert list(tmp_path.iterdir()) == []


def test_a_local_file_error_fails_the_step_clearly(
    defs: Definitions, core: S3Repository, tmp_path: Path
) -> None:
    digest = core.put(b"content")
    (tmp_path / "a-file").write_bytes(b"")
    dest = tmp_path / "a-file" / "model.bin"  # its directory cannot be made

    result = run(
        defs, "fetch_job", {"fetch": {"config": {"digest": str(digest), "dest": str(dest)}}}
    )

    assert failure_message(result).startswith(f"fetch {digest} failed: [Errno")
    assert "check the local path" in failure_text(result)


def test_stat_job_outputs_sizes_and_names_every_missing_digest(
    defs: Definitions, core: S3Repository
) -> None:
    present = core.put(b"present")
    gone = [Digest.of(b"gone 1"), Digest.of(b"gone 2")]

    result = run(defs, "stat_job", {"stat": {"config": {"digests": [str(present)]}}})
    assert [(f.digest, f.size) for f in result.output_for_node("stat")] == [(present, 7)]
    assert metadata(result, "stat")["bytes"] == 7

    digests = [str(present), *map(str, gone)]
    result = run(defs, "stat_job", {"stat": {"config": {"digests": digests}}})
    message = failure_message(result)
    assert f"2 of 3 digests are not in {core.url}" in message
    assert all(str(d) in message for d in gone)


# -- collection -----------------------------------------------------------------------


def observations(result: ExecuteInProcessResult) -> list[dict[str, Any]]:
    found = []
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_OBSERVATION:
            observation = event.event_specific_data.asset_observation
            assert observation.asset_key.path == ["s3repo", "repository"]
            found.append({k: v.value for k, v in observation.metadata.items()})
    return found


def test_collect_job_dry_run_then_real_deletes_exactly_the_garbage(
    defs: Definitions, core: S3Repository, bucket: str, s3server: LocalS3
) -> None:
    old_digests = [core.put(f"old {n}".encode() * 100) for n in range(6)]
    old = {digest: core.stat(digest).size for digest in old_digests}
    s3server.let_time_pass(GRACE + 3)  # the old objects are now older than any threshold
    kept_old = next(iter(old))
    new = core.put(b"new object")
    write_manifest(  # a record: its time (by this clock, not the moved one) holds nothing back
        f"s3://{bucket}/manifests/live.parquet",
        [ManifestRow(kept_old, old[kept_old], "old"), ManifestRow(new, 10, "new")],
        kind="record",
    )
    before = stored_keys(core)
    config = {"manifests": [f"s3://{bucket}/manifests/"], "shard_width": 1}

    dry = run(defs, "collect_job", {"plan_collection": {"config": config}})

    assert dry.success
    assert stored_keys(core) == before
    report = dry.output_for_node("report_collection")
    assert (report.dry_run, report.scanned, report.live, report.collected) == (True, 7, 2, 5)
    shard_steps = {e.step_key for e in dry.all_events if e.is_step_success}
    assert {f"collect_shard[{s}]" for s in "0123456789abcdef"} <= shard_steps
    for shard in "0123456789abcdef":  # each step read its own slice of the liveset only
        named = [d for d in (kept_old, new) if d.hex.startswith(shard)]
        assert metadata(dry, f"collect_shard[{shard}]")["live digests read"] == len(named)
    assert observations(dry) == [
        {
            "repository": core.url,
            "dry_run": True,
            "objects": 7,
            "bytes": sum(old.values()) + 10,
            "objects_live": 2,
            "objects_kept_recent": 0,
            "objects_collected": 0,
            "bytes_reclaimed": 0,
            "objects_collectable": 5,
            "bytes_collectable": sum(old.values()) - old[kept_old],
        }
    ]

    real = run(defs, "collect_job", {"plan_collection": {"config": {**config, "dry_run": False}}})

    assert real.success
    garbage = set(old) - {kept_old}
    assert stored_keys(core) == before - {core.layout.object_key(d) for d in garbage}
    (seen,) = observations(real)
    assert (seen["objects_collected"], seen["objects"]) == (5, 2)
    assert seen["bytes_reclaimed"] == sum(old[d] for d in garbage)
    meta = metadata(real, "report_collection")
    assert meta["objects collected"] == 5
    assert meta["by category"] == report_table(real.output_for_node("report_collection"))
    assert f"| collected | 5 | {meta['reclaimed']} |" in meta["by category"]


def test_collect_job_fails_closed_on_a_bad_manifest(
    defs: Definitions, core: S3Repository, bucket: str
) -> None:
    digest = core.put(b"must survive")
    write_manifest(f"s3://{bucket}/manifests/good.parquet", [ManifestRow(digest, 12, "x")])
    core.client.put_object(Bucket=bucket, Key="manifests/bad.parquet", Body=b"not parquet")
    config = {"manifests": [f"s3://{bucket}/manifests/"], "dry_run": False}

    result = run(defs, "collect_job", {"plan_collection": {"config": config}})

    assert not result.success
    message = failure_message(result)
    assert message.startswith("reading the liveset manifests failed:")
    assert f"s3://{bucket}/manifests/bad.parquet" in message
    assert not any(e.step_key.startswith("collect_shard") for e in result.all_events if e.step_key)
    assert core.stat(digest).size == 12


def test_collect_job_refuses_a_grace_shorter_than_the_repository_s(
    defs: Definitions, bucket: str, tmp_path: Path
) -> None:
    config = {"manifests": [str(tmp_path)], "grace_seconds": GRACE - 1}

    result = run(defs, "collect_job", {"plan_collection": {"config": config}})

    assert "is shorter than the repository's grace" in failure_message(result)


# -- errors a person can act on -------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_endpoint_fails_the_step_without_a_botocore_trace(
    moto_server: LocalS3,
) -> None:
    resource = resource_for(
        moto_server,
        "some-bucket",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        max_attempts=1,
        connect_timeout=2.0,
    )
    digest = str(Digest.of(b"x"))

    result = run(
        build_definitions(resource), "stat_job", {"stat": {"config": {"digests": [digest]}}}
    )

    assert "cannot connect to the S3 endpoint" in failure_message(result)
    text = failure_text(result)
    assert "check the endpoint URL" in text  # the hint
    assert "botocore" not in text


def test_wrong_credentials_fail_the_step_with_a_permission_error(
    s3server: LocalS3, bucket: str
) -> None:
    if s3server.name == "moto":
        pytest.skip("moto's server accepts any credentials")
    resource = resource_for(s3server, bucket, secret_access_key="wrong-secret", max_attempts=1)
    digest = str(Digest.of(b"x"))

    result = run(
        build_definitions(resource), "stat_job", {"stat": {"config": {"digests": [digest]}}}
    )

    text = failure_text(result)
    assert "PermissionDeniedError" in text
    assert "check the credentials" in text
    assert "wrong-secret" not in text
    assert "botocore" not in text


# -- schedule and resource ------------------------------------------------------------


def test_the_schedule_skips_without_manifests_and_its_run_config_validates(
    defs: Definitions, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("S3REPO_MANIFESTS", "S3REPO_COLLECT_DELETE", "S3REPO_COLLECT_CRON"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("S3REPO_COLLECT_SCHEDULE", raising=False)
    schedule = collection_schedule()
    assert (schedule.cron_schedule, schedule.default_status) == (
        DEFAULT_CRON,
        DefaultScheduleStatus.STOPPED,
    )
    skipped = schedule(build_schedule_context())
    assert isinstance(skipped, SkipReason)
    assert "S3REPO_MANIFESTS" in (skipped.skip_message or "")

    monkeypatch.setenv("S3REPO_MANIFESTS", "s3://b/manifests/, /data/live.parquet")
    request = schedule(build_schedule_context())
    assert isinstance(request, RunRequest)
    config = request.run_config["ops"]["plan_collection"]["config"]
    assert config == {"manifests": ["s3://b/manifests/", "/data/live.parquet"], "dry_run": True}
    validate_run_config(defs.get_job_def("collect_job"), request.run_config)

    monkeypatch.setenv("S3REPO_COLLECT_DELETE", "true")
    monkeypatch.setenv("S3REPO_COLLECT_CRON", "30 1 * * 0")
    monkeypatch.setenv("S3REPO_COLLECT_SCHEDULE", "running")
    schedule = collection_schedule()
    request = schedule(build_schedule_context())
    assert request.run_config["ops"]["plan_collection"]["config"]["dry_run"] is False
    assert request.tags["s3repo/dry_run"] == "false"
    assert (schedule.cron_schedule, schedule.default_status) == (
        "30 1 * * 0",
        DefaultScheduleStatus.RUNNING,
    )


def test_the_resource_builds_one_client_per_connection_setting(
    s3server: LocalS3, bucket: str
) -> None:
    first = resource_for(s3server, bucket)
    assert first.client() is first.client()
    assert resource_for(s3server, bucket, prefix="elsewhere").client() is first.client()
    assert resource_for(s3server, bucket, max_attempts=2).client() is not first.client()
    assert first.repository().client is first.client()


def test_the_resource_s_clients_are_the_core_s_shared_clients(
    s3server: LocalS3, bucket: str
) -> None:
    resource = resource_for(s3server, bucket)
    assert resource.client() is shared_client(
        endpoint_url=s3server.endpoint_url,
        region=s3server.region,
        access_key_id=s3server.access_key,
        secret_access_key=s3server.secret_key,
        connect_timeout=resource.connect_timeout,
        read_timeout=resource.read_timeout,
    )


def test_the_jobs_hand_their_client_to_the_core_and_set_none_for_the_process(
    s3server: LocalS3, tmp_path: Path
) -> None:
    bucket = s3server.create_bucket()  # no client is set for it
    defs = build_definitions(resource_for(s3server, bucket))
    (tmp_path / "model.bin").write_bytes(b"weights")
    manifests = f"s3://{bucket}/manifests/"
    # The process's default client reaches nothing: an op that fell back on it would fail.
    dead = make_client(
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        region="us-east-1",
        access_key_id="nobody",
        secret_access_key="nothing",
        max_attempts=1,
        connect_timeout=1.0,
    )
    with using_client(dead):
        ingest_ops = {
            "ingest": {"config": {"paths": [str(tmp_path)]}},
            "write_manifest": {"config": {"dest": manifests}},
        }
        ingested = run(defs, "ingest_job", ingest_ops)
        assert ingested.success, failure_message(ingested)

        collect_ops = {"plan_collection": {"config": {"manifests": [manifests]}}}
        collected = run(defs, "collect_job", collect_ops)
        assert collected.success, failure_message(collected)

        assert collected.output_for_node("report_collection").live == 1
        assert metadata(collected, "plan_collection")["live rows"] == 1
        assert client_for(bucket) is dead  # no job set a client for the bucket


def test_definitions_take_another_executor_and_io_manager(resource: S3RepoResource) -> None:
    from dagster import fs_io_manager, in_process_executor, multi_or_in_process_executor

    defs = build_definitions(resource)
    assert defs.get_job_def("ingest_job").executor_def.name == "multi_or_in_process_executor"
    # collect_job's steps run in process by default, and multiprocess when asked.
    default = defs.get_job_def("collect_job").executor_def
    assert default.name == "in_process_or_multiprocess"
    assert default.config_schema.default_value == {"in_process": {}}
    assert default.executor_creation_fn is multi_or_in_process_executor.executor_creation_fn
    custom = build_definitions(resource, executor=in_process_executor, io_manager=fs_io_manager)
    job_def = custom.get_job_def("collect_job")
    assert job_def.executor_def is in_process_executor
    assert job_def.resource_defs["io_manager"] is fs_io_manager


# -- collection from an S3 Inventory report --------------------------------------------


def test_collect_job_takes_its_candidates_from_the_newest_inventory_report(
    defs: Definitions, core: S3Repository, bucket: str, s3server: LocalS3
) -> None:
    for n in range(5):
        core.put(f"garbage {n}".encode())
    kept = core.put(b"kept")
    s3server.let_time_pass(GRACE + 3)
    write_manifest(
        f"s3://{bucket}/manifests/live.parquet", [ManifestRow(kept, 4, "x")], kind="record"
    )
    client = s3server.client()
    report_at = write_inventory(client, bucket, bucket, listing(client, bucket))
    config = {
        "manifests": [f"s3://{bucket}/manifests/"],
        "inventory": f"s3://{bucket}/inventory/{bucket}/daily/",
        "dry_run": False,
    }

    result = run(defs, "collect_job", {"plan_collection": {"config": config}})

    assert result.success, failure_text(result)
    assert metadata(result, "plan_collection")["inventory"] == report_at
    report = result.output_for_node("report_collection")
    assert (report.scanned, report.live, report.collected) == (6, 1, 5)
    assert stored_keys(core) == {core.layout.object_key(kept)}


def test_collect_job_fails_closed_without_an_inventory_report(
    defs: Definitions, bucket: str
) -> None:
    config = {"manifests": [f"s3://{bucket}/manifests/"], "inventory": f"s3://{bucket}/none/"}
    write_manifest(f"s3://{bucket}/manifests/live.parquet", [], kind="record")
    result = run(defs, "collect_job", {"plan_collection": {"config": config}})
    assert not result.success
    assert "no S3 Inventory report (manifest.json) under" in failure_text(result)


def test_the_inventory_sensor_requests_one_run_per_new_report(
    defs: Definitions,
    resource: S3RepoResource,
    bucket: str,
    s3server: LocalS3,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("S3REPO_INVENTORY", "S3REPO_MANIFESTS", "S3REPO_COLLECT_DELETE"):
        monkeypatch.delenv(var, raising=False)
    sensor = defs.get_sensor_def("inventory_collection")
    context = build_sensor_context(resources={"repository": resource})
    skipped = sensor(context)
    assert isinstance(skipped, SkipReason) and "S3REPO_INVENTORY" in (skipped.skip_message or "")

    prefix = f"s3://{bucket}/inventory/{bucket}/daily/"
    monkeypatch.setenv("S3REPO_INVENTORY", prefix)
    monkeypatch.setenv("S3REPO_MANIFESTS", f"s3://{bucket}/manifests/")
    assert "no Inventory report under" in (sensor(context).skip_message or "")
    client = s3server.client()
    first = write_inventory(client, bucket, bucket, [], at=datetime(2026, 11, 30, 1, tzinfo=UTC))

    request = sensor(context)
    assert isinstance(request, RunRequest) and request.run_key == first
    assert request.run_config["ops"]["plan_collection"]["config"]["inventory"] == first
    validate_run_config(defs.get_job_def("collect_job"), request.run_config)
    assert context.cursor == first
    assert isinstance(sensor(context), SkipReason)  # nothing new
    second = write_inventory(client, bucket, bucket, [], at=datetime(2026, 12, 1, 1, tzinfo=UTC))
    assert sensor(context).run_key == second


def test_a_collect_job_with_a_fixed_step_per_shard_collects_and_checks_its_width(
    resource: S3RepoResource, core: S3Repository, bucket: str, s3server: LocalS3
) -> None:
    defs = build_definitions(resource, fixed_shard_width=1)
    dead = core.put(b"garbage")
    kept = core.put(b"kept")
    s3server.let_time_pass(GRACE + 3)
    write_manifest(
        f"s3://{bucket}/manifests/live.parquet", [ManifestRow(kept, 4, "x")], kind="record"
    )
    config = {"manifests": [f"s3://{bucket}/manifests/"], "dry_run": False}

    wrong = run(defs, "collect_job", {"plan_collection": {"config": {**config, "shard_width": 0}}})
    assert not wrong.success
    assert "a fixed step per shard of 1 hex digits: set shard_width: 1" in failure_text(wrong)

    result = run(defs, "collect_job", {"plan_collection": {"config": config}})  # unset: 1
    assert result.success, failure_text(result)
    steps = {e.step_key for e in result.all_events if e.is_step_success}
    assert {f"collect_shard_{s}" for s in [*"0123456789abcdef", "other", "uploads"]} <= steps
    assert result.output_for_node("report_collection").collected == 1
    assert core.layout.object_key(dead) not in stored_keys(core)
    assert stored_keys(core) == {core.layout.object_key(kept)}


def test_collect_job_picks_its_shard_steps_from_the_liveset_s_size_unless_told(
    defs: Definitions, core: S3Repository, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planning, "ONE_WORKER_ROWS", 2)  # one step below 2 live digests
    location = f"s3://{bucket}/manifests/live.parquet"
    config = {"manifests": [location]}

    def shard_steps(rows: list[ManifestRow], **more: Any) -> set[str]:
        write_manifest(location, rows, kind="record")
        result = run(defs, "collect_job", {"plan_collection": {"config": {**config, **more}}})
        assert result.success, failure_text(result)
        return {
            e.step_key for e in result.all_events if e.step_key and "collect_shard" in e.step_key
        }

    one = [ManifestRow(core.put(b"one"), 3, "x")]
    two = [*one, ManifestRow(core.put(b"two"), 3, "x")]
    assert shard_steps(one) == {"collect_shard[all]"}
    assert len(shard_steps(two)) == 18
    assert shard_steps(two, shard_width=0) == {"collect_shard[all]"}
