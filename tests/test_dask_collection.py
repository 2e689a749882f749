"""collect_job on a real distributed engine: a Dask cluster of two worker processes.

The fixture starts a ``dask.distributed.LocalCluster`` (two worker processes, one
thread each) and stops it, checking its workers are gone. The job is the code
location's collect_job with the Dask executor, a fixed step per shard (dagster-dask
cannot map dynamic outputs, Dagster issue #9785) and ``S3RepoIOManager``, so that
every worker reads the plan from the repository itself, not from a local disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from dagster import DagsterEventType, DagsterInstance, JobDefinition, execute_job
from test_pipelines_processes import (
    SHORT,
    dagster_home,  # noqa: F401 - a fixture
    failure_texts,
    of_type,
    recon,
    records,
    repository_env,
    seed,
    short_window_resource,
    stored_digests,
    write_live_manifest,
)

from devkit.localserver import LocalS3
from repo_pipelines import S3RepoIOManager, build_definitions

distributed = pytest.importorskip("distributed")
dagster_dask = pytest.importorskip("dagster_dask")


def dask_collect_job() -> JobDefinition:
    """collect_job as a Dask deployment would build it (rebuilt by each worker)."""
    resource = short_window_resource()
    defs = build_definitions(
        resource,
        executor=dagster_dask.dask_executor,
        io_manager=S3RepoIOManager(repository=resource),
        fixed_shard_width=1,
    )
    return defs.get_job_def("collect_job")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def cluster(
    moto_server: LocalS3, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[tuple[object, str, set[int]]]:
    """A bucket, the S3REPO_* environment for it, and a two-process Dask cluster that
    inherits that environment; the cluster's worker processes are gone afterwards."""
    request.getfixturevalue("dagster_home")  # a persistent instance, as Dask needs
    bucket = moto_server.create_bucket()
    for name, value in repository_env(moto_server, bucket).items():
        monkeypatch.setenv(name, value)
    local = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(local)
    workers = set(client.run(os.getpid).values())
    try:
        yield local, bucket, workers
    finally:
        client.close()
        local.close()
        deadline = time.monotonic() + 20
        while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(gone(pid) for pid in workers), "a Dask worker process outlived its cluster"


def test_collect_job_spreads_its_shards_over_dask_workers_and_deletes_only_garbage(
    cluster: tuple[object, str, set[int]], moto_server: LocalS3
) -> None:
    local, bucket, workers = cluster
    live, dead, _ = seed(moto_server, bucket, 12, **SHORT)
    moto_server.let_time_pass(SHORT["grace_seconds"] + 3)
    manifest = write_live_manifest(bucket, live)
    address = local.scheduler_address  # type: ignore[attr-defined]

    with (
        DagsterInstance.get() as instance,
        execute_job(
            recon(dask_collect_job),
            instance=instance,
            run_config={
                "ops": {
                    "plan_collection": {
                        "config": {"manifests": [manifest], "dry_run": False, "shard_width": 1}
                    }
                },
                "execution": {"config": {"cluster": {"existing": {"address": address}}}},
            },
        ) as result,
    ):
        assert result.success, failure_texts(records(instance, result.run_id))
        report = result.output_for_node("report_collection")
        entries = records(instance, result.run_id)

    stored = stored_digests(moto_server, bucket)
    assert set(live) <= stored and not set(dead) & stored  # the IO manager's outputs too
    assert (report.live, report.collected, report.errors) == (len(live), len(dead), [])
    starts = [
        e
        for e in of_type(entries, DagsterEventType.STEP_START)
        if e.step_key.startswith("collect_shard_")
    ]
    assert len(starts) == 18  # 16 digest shards, 'other' and 'uploads'
    pids = {e.dagster_event.pid for e in starts}
    assert pids <= workers and len(pids) == 2, (pids, workers)  # both workers collected
