"""The code location in real processes: a Dagster instance on disk, step subprocesses,
the CLI and the webserver, all against the session's moto server on 127.0.0.1.

In-process tests (test_pipelines.py) cannot show what only processes show: that the
liveset reaches every shard step through the IO manager, that configuration read
from the environment reaches the children, that no secret is written to the
instance's storage, and that the workspace loads as the webserver loads it.
"""

from __future__ import annotations

import json
import multiprocessing.forkserver
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    JobDefinition,
    build_reconstructable_job,
    execute_job,
)
from dagster._serdes import serialize_value

from devkit.localserver import LocalS3
from repo_pipelines import S3RepoResource, build_definitions
from s3repo_core import (
    Digest,
    ManifestRow,
    S3Repository,
    read_manifest,
    set_client,
    write_manifest,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PREFIX = "pipes"
#: Short windows so that seeded objects are old enough to collect within seconds.
SHORT = {"grace_seconds": 5.0, "refresh_window_seconds": 1.0, "settle_seconds": 1.0}
#: Two steps at a time, each in a process forked from a server that has imported Dagster,
#: s3repo and this module once (spawning a fresh interpreter per step costs ~3 s each).
MULTIPROCESS = {
    "max_concurrent": 2,
    "start_method": {"forkserver": {"preload_modules": ["dagster", "repo_pipelines"]}},
}
REPOSITORY_ASSET = AssetKey(["s3repo", "repository"])


# -- jobs the step subprocesses rebuild (they re-import this module) -----------------------


def short_window_resource() -> S3RepoResource:
    """The repository in S3REPO_*, with SHORT windows (from_env has the defaults)."""
    env = os.environ
    return S3RepoResource(
        bucket=env["S3REPO_BUCKET"],
        prefix=env["S3REPO_PREFIX"],
        endpoint_url=env["S3REPO_ENDPOINT_URL"],
        region=env["S3REPO_REGION"],
        access_key_id=env["S3REPO_ACCESS_KEY_ID"],
        secret_access_key=env["S3REPO_SECRET_ACCESS_KEY"],
        **SHORT,
    )


def short_window_collect_job() -> JobDefinition:
    """collect_job on the repository in S3REPO_*, with SHORT windows."""
    return build_definitions(short_window_resource()).get_job_def("collect_job")


def env_ingest_job() -> JobDefinition:
    """ingest_job exactly as the code location builds it: credentials as EnvVar."""
    return build_definitions(S3RepoResource.from_env()).get_job_def("ingest_job")


def env_stat_job() -> JobDefinition:
    return build_definitions(S3RepoResource.from_env()).get_job_def("stat_job")


def recon(job_fn: Any) -> Any:
    """``reconstructable(job_fn)``, but importable by the step processes.

    pytest puts tests/ on sys.path only in this process; the children resolve this
    module from the pointer's working directory, so point that at the right folder.
    """
    module = job_fn.__module__
    root = Path(__file__).resolve().parents[module.count(".")]
    return build_reconstructable_job(
        module, job_fn.__name__, reconstructor_working_directory=str(root)
    )


# -- helpers --------------------------------------------------------------------------------


def repository_env(
    server: LocalS3, bucket: str, secret: str | None = None, token: str | None = None
) -> dict[str, str]:
    """The S3REPO_* variables that point the code location at ``bucket`` on ``server``."""
    return {
        **({"S3REPO_SESSION_TOKEN": token} if token else {}),
        "S3REPO_BUCKET": bucket,
        "S3REPO_PREFIX": PREFIX,
        "S3REPO_ENDPOINT_URL": server.endpoint_url,
        "S3REPO_REGION": server.region,
        "S3REPO_ACCESS_KEY_ID": server.access_key,
        "S3REPO_SECRET_ACCESS_KEY": secret or server.secret_key,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def seed(
    server: LocalS3, bucket: str, count: int, **windows: Any
) -> tuple[dict[str, int], dict[str, int], S3Repository]:
    """Put ``count`` objects of different sizes; return (first half, second half) by digest."""
    client = server.client()
    set_client(client, bucket=bucket)
    durations = {k.removesuffix("_seconds"): timedelta(seconds=v) for k, v in windows.items()}
    repo = S3Repository(bucket, PREFIX, client=client, **durations)
    stored = {}
    for n in range(count):
        data = f"object {n} ".encode() * (n + 1)
        stored[str(repo.put(data))] = len(data)
    digests = sorted(stored)
    live = {d: stored[d] for d in digests[::2]}
    dead = {d: stored[d] for d in digests[1::2]}
    return live, dead, repo


def write_live_manifest(bucket: str, live: dict[str, int]) -> str:
    """A record (seeded objects were stored before it): only snapshots hold the threshold
    back, and a snapshot's time by this clock would, once moto's clock has moved."""
    location = f"s3://{bucket}/manifests/x.parquet"
    rows = [ManifestRow(Digest.parse(d), s, "test") for d, s in live.items()]
    write_manifest(location, rows, kind="record")
    return location


def stored_digests(server: LocalS3, bucket: str) -> set[str]:
    pages = (
        server.client()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=bucket, Prefix=f"{PREFIX}/objects/")
    )
    return {item["Key"].rsplit("/", 1)[1] for page in pages for item in page.get("Contents", [])}


def write_dagster_yaml(home: Path, extra: str = "") -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n" + extra)


def records(instance: DagsterInstance, run_id: str) -> list[Any]:
    return list(instance.all_logs(run_id))


def of_type(entries: list[Any], kind: DagsterEventType) -> list[Any]:
    return [e for e in entries if e.dagster_event and e.dagster_event.event_type == kind]


def observation_metadata(entries: list[Any]) -> dict[str, Any]:
    """The metadata of the run's one observation of the repository asset."""
    observations = [
        e.dagster_event.event_specific_data.asset_observation
        for e in of_type(entries, DagsterEventType.ASSET_OBSERVATION)
    ]
    ours = [o for o in observations if o.asset_key == REPOSITORY_ASSET]
    assert len(ours) == 1, observations
    return {k: v.value for k, v in ours[0].metadata.items()}


def failure_texts(entries: list[Any]) -> list[str]:
    """What went wrong in a run, for an assertion's message."""
    return [
        str(e.dagster_event.event_specific_data)
        for e in entries
        if e.dagster_event and e.dagster_event.is_failure
    ] + [e.user_message for e in entries if e.level >= 40]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh DAGSTER_HOME, and no forkserver from before or after the test.

    Step processes fork from the forkserver, so they see the environment it started
    with: a server left from another test would hand them that test's S3REPO_*.
    """
    home = tmp_path / "dagster_home"
    write_dagster_yaml(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    multiprocessing.forkserver._forkserver._stop()
    yield home
    multiprocessing.forkserver._forkserver._stop()  # else it lives as long as the session


# -- 1. the fan-out on the multiprocess executor ---------------------------------------------


def test_collection_fans_out_over_processes_and_deletes_only_garbage(
    moto_server: LocalS3, dagster_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shard steps run in their own processes, each reading the plan through the IO manager;
    together they delete exactly the unnamed old objects, and the report adds up."""
    bucket = moto_server.create_bucket()
    for name, value in repository_env(moto_server, bucket).items():
        monkeypatch.setenv(name, value)
    live, dead, _ = seed(moto_server, bucket, 12, **SHORT)
    moto_server.let_time_pass(SHORT["grace_seconds"] + 3)  # older than any threshold
    manifest = write_live_manifest(bucket, live)

    with DagsterInstance.get() as instance:
        started = time.monotonic()
        with execute_job(
            recon(short_window_collect_job),
            instance=instance,
            run_config={
                "ops": {
                    "plan_collection": {
                        "config": {"manifests": [manifest], "dry_run": False, "shard_width": 1}
                    }
                },
                "execution": {"config": {"multiprocess": MULTIPROCESS}},
            },
        ) as result:
            seconds = time.monotonic() - started
            assert result.success, failure_texts(records(instance, result.run_id))
            report = result.output_for_node("report_collection")
            run_id = result.run_id
        entries = records(instance, run_id)
    print(f"multiprocess collect_job took {seconds:.1f} s")

    assert stored_digests(moto_server, bucket) == set(live)

    shard_starts = [
        e
        for e in of_type(entries, DagsterEventType.STEP_START)
        if e.step_key.startswith("collect_shard[")
    ]
    assert len(shard_starts) == 18  # 16 digest shards, 'other' and 'uploads'
    pids = {e.dagster_event.pid for e in shard_starts}
    assert os.getpid() not in pids
    assert len(pids) == len(shard_starts), pids  # each shard in a process of its own

    assert not report.dry_run
    assert report.scanned == len(live) + len(dead)
    assert report.live == len(live)
    assert report.live_bytes == sum(live.values())
    assert report.kept_recent == 0
    assert report.collected == len(dead)
    assert report.bytes_collected == sum(dead.values())
    assert report.errors == []

    observed = observation_metadata(entries)
    assert observed["objects_collected"] == len(dead)
    assert observed["bytes_reclaimed"] == sum(dead.values())
    assert observed["objects"] == len(live)


# -- 2. secrets stay out of the instance -----------------------------------------------------


def test_secret_key_never_reaches_the_event_log_run_record_or_storage(
    moto_server: LocalS3, dagster_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The secret key and the session token are given as EnvVar: runs that use them, and
    one that fails, store only the variables' names, anywhere under DAGSTER_HOME; a
    failure reads as one clear line."""
    marker = f"s3cr3t-{uuid.uuid4().hex}"
    token = f"t0k3n-{uuid.uuid4().hex}"
    bucket = moto_server.create_bucket()
    for name, value in repository_env(moto_server, bucket, secret=marker, token=token).items():
        monkeypatch.setenv(name, value)
    source = tmp_path / "artifact.bin"
    source.write_bytes(b"an artifact for the secret test\n" * 100)
    missing = str(Digest.of(b"never stored"))

    with DagsterInstance.get() as instance:
        ingest = execute_job(
            recon(env_ingest_job),
            instance=instance,
            run_config={
                "ops": {
                    "ingest": {"config": {"paths": [str(source)]}},
                    "write_manifest": {"config": {"dest": f"s3://{bucket}/manifests/"}},
                },
                "execution": {"config": {"multiprocess": MULTIPROCESS}},
            },
        )
        assert ingest.success
        failed = execute_job(
            recon(env_stat_job),
            instance=instance,
            run_config={
                "ops": {"stat": {"config": {"digests": [missing]}}},
                "execution": {"config": {"multiprocess": MULTIPROCESS}},
            },
            raise_on_error=False,
        )
        assert not failed.success
        runs = [instance.get_run_by_id(ingest.run_id), instance.get_run_by_id(failed.run_id)]
        texts = []
        for run in runs:
            assert run is not None
            texts.append(serialize_value(run))
            texts.append(json.dumps(run.run_config))
            texts.append(json.dumps(dict(run.tags)))
            texts.append(serialize_value(instance.get_job_snapshot(run.job_snapshot_id)))
            texts.extend(serialize_value(e) for e in records(instance, run.run_id))
        failures = of_type(records(instance, failed.run_id), DagsterEventType.STEP_FAILURE)

    everything = "\n".join(texts)
    # The checks can see what the runs did (the objects, the bucket, the variable's name)...
    assert str(Digest.of(source.read_bytes())) in everything
    assert bucket in everything
    assert "S3REPO_SECRET_ACCESS_KEY" in everything
    assert "S3REPO_SESSION_TOKEN" in everything
    # ...but never the secrets themselves.
    assert marker not in everything and token not in everything
    for path in dagster_home.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert marker.encode() not in content and token.encode() not in content, path

    assert len(failures) == 1
    error = failures[0].dagster_event.step_failure_data.error
    assert "not in" in error.message and missing in error.message, error.message
    assert "botocore" not in serialize_value(error)
    assert marker not in serialize_value(error) and token not in serialize_value(error)


# -- 3. the CLI validates the workspace ------------------------------------------------------


def _validate(workspace: Path, home: Path) -> subprocess.CompletedProcess[str]:
    write_dagster_yaml(home)
    return subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", str(workspace)],
        cwd=REPO_ROOT,
        env=dict(os.environ, DAGSTER_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dagster_definitions_validate_accepts_the_workspace(tmp_path: Path) -> None:
    """What a deployment runs before it ships: the code location must load in a new process."""
    done = _validate(REPO_ROOT / "workspace.yaml", tmp_path / "home")
    assert done.returncode == 0, done.stdout + done.stderr


def test_dagster_definitions_validate_rejects_a_broken_workspace(tmp_path: Path) -> None:
    """So that the test above could fail: a workspace naming a missing module is refused."""
    module = f"no_such_module_{uuid.uuid4().hex[:8]}"
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - python_module: {module}\n")
    done = _validate(workspace, tmp_path / "home")
    assert done.returncode != 0
    assert module in done.stdout + done.stderr


def test_the_readme_s_job_execute_command_runs_a_job(moto_server: LocalS3, tmp_path: Path) -> None:
    """`dagster job execute -m repo_pipelines -j JOB -c run.yaml`, as the README gives it."""
    bucket = moto_server.create_bucket()
    client = moto_server.client()
    set_client(client, bucket=bucket)
    digest = S3Repository(bucket, PREFIX, client=client).put(b"looked up from the CLI")
    readme = (REPO_ROOT / "README.md").read_text()
    assert "`dagster job execute -m repo_pipelines -j JOB -c run.yaml`" in readme
    config = tmp_path / "run.yaml"
    config.write_text(f'ops:\n  stat: {{config: {{digests: ["{digest}"]}}}}\n')
    home = tmp_path / "home"
    write_dagster_yaml(home)
    done = subprocess.run(
        [
            str(BIN / "dagster"),
            *["job", "execute", "-m", "repo_pipelines", "-j", "stat_job", "-c"],
            str(config),
        ],
        cwd=REPO_ROOT,
        env=dict(os.environ, DAGSTER_HOME=str(home), **repository_env(moto_server, bucket)),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "RUN_SUCCESS" in done.stdout + done.stderr


# -- 4. the webserver launches a run ---------------------------------------------------------

RUN_COORDINATOR = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""


@contextmanager
def webserver(
    home: Path, env: dict[str, str], workspace: Path = REPO_ROOT / "workspace.yaml"
) -> Iterator[int]:
    """dagster-webserver on a free loopback port, stopped (and its children) on exit."""
    port = free_port()
    log = (home / "webserver.log").open("wb")
    proc = subprocess.Popen(
        [
            str(BIN / "dagster-webserver"),
            "-w",
            str(workspace),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO_ROOT,
        env=dict(os.environ, DAGSTER_HOME=str(home), **env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its code server and run processes share its group
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (home / "webserver.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, "the webserver did not answer within 90 s"
                time.sleep(0.5)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        with suppress(ProcessLookupError):  # whatever it left behind, in the group we gave it
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def graphql(port: int, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def wait_for_run(client: Any, run_id: str) -> DagsterRunStatus:
    """The run's final status, asked once a second for at most two minutes."""
    deadline = time.monotonic() + 120
    status = client.get_run_status(run_id)
    while status not in (
        DagsterRunStatus.SUCCESS,
        DagsterRunStatus.FAILURE,
        DagsterRunStatus.CANCELED,
    ):
        assert time.monotonic() < deadline, f"run {run_id} still {status} after 120 s"
        time.sleep(0.5)
        status = client.get_run_status(run_id)
    return status


def report_duration(what: str, instance: DagsterInstance, run_id: str) -> None:
    """Print how long the run took from its start to its end, for the record (-s shows
    it): speed is the benchmarks' business, never an assertion here."""
    stats = instance.get_run_stats(run_id)
    record = instance.get_run_record_by_id(run_id)
    if stats.start_time and stats.end_time and record is not None:
        launched = record.create_timestamp.timestamp()
        print(
            f"{what}: {stats.end_time - launched:.1f} s from launch to end, "
            f"{stats.end_time - stats.start_time:.1f} s from start to end"
        )


@pytest.mark.filterwarnings("ignore::DeprecationWarning:gql")
def test_webserver_launches_a_dry_run_collection(
    moto_server: LocalS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code location as people use it: loaded by the webserver from workspace.yaml and
    configured by S3REPO_*; a run launched through GraphQL collects (dry) and keeps all."""
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    from devkit.pipelines_demo import Demo

    home = tmp_path / "dagster_home"
    write_dagster_yaml(home, RUN_COORDINATOR)
    bucket = moto_server.create_bucket()
    env = repository_env(moto_server, bucket)
    live, dead, _ = seed(moto_server, bucket, 6)  # default windows: all are recent
    write_live_manifest(bucket, live)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # A run the demo makes in process, into the same instance, as `demo --ui` does.
    with DagsterInstance.from_config(str(home)) as instance:
        demo = Demo(moto_server, instance, bucket=moto_server.create_bucket())
        stored = demo.resource.repository().put(b"an object the demo looks up")
        demo_run = demo.run("stat_job", {"stat": {"config": {"digests": [str(stored)]}}}).run_id

    with webserver(home, env) as port:
        data = graphql(
            port,
            "{ repositoriesOrError { ... on RepositoryConnection "
            "{ nodes { name location { name } jobs { name } } } } }",
        )
        nodes = data["repositoriesOrError"]["nodes"]
        assert len(nodes) == 1, nodes
        location, repository = nodes[0]["location"]["name"], nodes[0]["name"]
        assert (location, repository) == ("repo_pipelines", "__repository__")
        assert "collect_job" in {j["name"] for j in nodes[0]["jobs"]}
        # The demo's run is on stat_job's page, which lists the runs of the job's code
        # location only.
        job_page = graphql(
            port,
            '{ pipelineOrError(params: {pipelineName: "stat_job", repositoryName: '
            f'"{repository}", repositoryLocationName: "{location}"}}) '
            "{ ... on Pipeline { runs { runId } } } }",
        )
        assert [run["runId"] for run in job_page["pipelineOrError"]["runs"]] == [demo_run]

        client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
        # Config that the step would refuse is refused at launch: no run is made.
        with pytest.raises(DagsterGraphQLClientError, match=r"ops\.ingest\.config\.paths"):
            client.submit_job_execution(
                "ingest_job",
                repository_location_name=location,
                repository_name=repository,
                run_config={"ops": {"ingest": {"config": {"paths": []}}}},
            )
        run_id = client.submit_job_execution(
            "collect_job",
            repository_location_name=location,
            repository_name=repository,
            run_config={
                "ops": {
                    "plan_collection": {
                        "config": {"manifests": [f"s3://{bucket}/manifests/"], "dry_run": True}
                    }
                },  # the executor the launchpad gives: processes, one per step
            },
        )
        status = wait_for_run(client, run_id)

    with DagsterInstance.from_config(str(home)) as instance:
        entries = records(instance, run_id)
        report_duration("collect_job (dry run) launched from the UI", instance, run_id)
        assert {run.run_id for run in instance.get_runs()} == {demo_run, run_id}
    assert status == DagsterRunStatus.SUCCESS, failure_texts(entries)
    # The launchpad's default for collect_job: its steps in the run's own process.
    assert any("Executing steps in process" in e.user_message for e in entries)
    observed = observation_metadata(entries)
    assert observed["dry_run"] is True
    assert observed["objects"] == len(live) + len(dead)
    assert observed["objects_live"] == len(live)
    assert observed["objects_kept_recent"] == len(dead)
    assert observed["objects_collectable"] == 0
    assert observed["objects_collected"] == 0
    assert stored_digests(moto_server, bucket) == set(live) | set(dead)


ASSET_LOCATION = """\
from dagster import asset, define_asset_job

from repo_pipelines import S3RepoIOManager, S3RepoResource
from repo_pipelines.definitions import build_definitions


@asset
def model() -> bytes:
    return b"weights trained in the UI"


repository = S3RepoResource.from_env()
defs = build_definitions(
    repository,
    io_manager=S3RepoIOManager(repository=repository, manifests={manifests!r}),
    assets=[model],
    jobs=[define_asset_job("train", selection=[model])],
)
"""


@pytest.mark.filterwarnings("ignore::DeprecationWarning:gql")
def test_webserver_materialises_an_asset_through_the_io_manager(
    moto_server: LocalS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's own code location, as build_definitions' docstring shows it: an asset
    job launched through GraphQL stores the asset by digest and writes its record."""
    from dagster_graphql import DagsterGraphQLClient

    home = tmp_path / "dagster_home"
    write_dagster_yaml(home, RUN_COORDINATOR)
    bucket = moto_server.create_bucket()
    manifests = f"s3://{bucket}/manifests/dagster/"
    (tmp_path / "my_location.py").write_text(ASSET_LOCATION.format(manifests=manifests))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_file:\n      relative_path: my_location.py\n"
        f"      working_directory: {tmp_path}\n"
    )
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")

    with webserver(home, repository_env(moto_server, bucket), workspace) as port:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
        run_id = client.submit_job_execution("train")
        status = wait_for_run(client, run_id)

    with DagsterInstance.from_config(str(home)) as instance:
        entries = records(instance, run_id)
        report_duration("an asset job launched from the UI", instance, run_id)
    assert status == DagsterRunStatus.SUCCESS, failure_texts(entries)
    (materialized,) = of_type(entries, DagsterEventType.ASSET_MATERIALIZATION)
    metadata = materialized.dagster_event.event_specific_data.materialization.metadata
    digest = Digest.of(b"weights trained in the UI")
    assert metadata["digest"].value == str(digest)
    assert stored_digests(moto_server, bucket) == {str(digest)}
    record = metadata["record"].value
    assert record.startswith(f"{manifests}assets/model/_/") and record.endswith(".parquet")
    assert list(read_manifest(record, client=moto_server.client())) == [
        ManifestRow(digest, len(b"weights trained in the UI"), "model")
    ]
