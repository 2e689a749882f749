"""The jobs people launch: ingest (and a manifest), a manifest alone, fetch, stat, collect,
verify."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import (
    ExecutorDefinition,
    Field,
    JobDefinition,
    graph,
    multi_or_in_process_executor,
)

from s3repo_core import shard_names

from .collection import (
    CollectConfig,
    collect_shard,
    plan_collection,
    report_collection,
    static_collect_shard,
    static_plan_collection,
    static_report_collection,
)
from .fetch import FetchConfig, StatConfig, fetch, stat
from .ingest import IngestConfig, ingest
from .launch_checks import checked_job, op_config
from .manifests import ManifestConfig, write_manifest_op
from .verification import VerifyConfig, plan_verification, report_verification, verify_shard

__all__ = [
    "collect_job",
    "fetch_job",
    "ingest_job",
    "make_collect_job",
    "make_verify_job",
    "manifest_job",
    "stat_job",
    "verify_job",
]


def paths_given(run_config: Mapping[str, Any]) -> str | None:
    """ingest_job's ingest has no upstream bytes: its paths are all it can ingest."""
    if not op_config(run_config, "ingest").get("paths"):
        return "ops.ingest.config.paths: give at least one file or directory to ingest"
    return None


def digests_and_dest_given(run_config: Mapping[str, Any]) -> str | None:
    """manifest_job's manifest has no upstream rows: it records the listed digests."""
    config = op_config(run_config, "write_manifest")
    if not config.get("digests"):
        return "ops.write_manifest.config.digests: give at least one digest to record"
    if not config.get("dest"):
        return "ops.write_manifest.config.dest: give where to write the manifest"
    return None


@graph(name="ingest_job")
def ingest_graph() -> None:
    write_manifest_op(ingest())


@graph(name="manifest_job")
def manifest_graph() -> None:
    write_manifest_op()


@graph(name="fetch_job")
def fetch_graph() -> None:
    fetch()


@graph(name="stat_job")
def stat_graph() -> None:
    stat()


ingest_job = checked_job(
    ingest_graph,
    description="Put files or directories into the repository; optionally write their manifest.",
    configs={"ingest": IngestConfig, "write_manifest": ManifestConfig},
    rules=[paths_given],
)
manifest_job = checked_job(
    manifest_graph,
    description="Write a liveset manifest of digests listed in config (each looked up first).",
    configs={"write_manifest": ManifestConfig},
    rules=[digests_and_dest_given],
)
fetch_job = checked_job(
    fetch_graph,
    description="Download one object by digest to a local path, verified.",
    configs={"fetch": FetchConfig},
)
stat_job = checked_job(
    stat_graph,
    description="Look up objects by digest: present or not, and their sizes.",
    configs={"stat": StatConfig},
)


#: Dagster's default executor, but in process unless the run config says
#: ``multiprocess``: collect_job's default is one collect step, and three step
#: processes take longer to start (seconds each) than a small repository takes to
#: collect. ``execution: config: multiprocess:`` fans a ``shard_width`` of 1 or more out
#: over processes, as with any job.
in_process_by_default = ExecutorDefinition(
    name="in_process_or_multiprocess",
    config_schema=Field(
        multi_or_in_process_executor.config_schema.config_type,
        default_value={"in_process": {}},
    ),
    requirements=multi_or_in_process_executor.get_requirements,
    executor_creation_fn=multi_or_in_process_executor.executor_creation_fn,
    description="Steps in the run's process unless the run config says multiprocess.",
)


def make_collect_job(
    executor: ExecutorDefinition | None = in_process_by_default,
    fixed_shard_width: int | None = None,
) -> JobDefinition:
    """collect_job, on ``executor`` (None: the code location's, a Dask, Celery or
    Kubernetes executor given to ``build_definitions``).

    ``fixed_shard_width`` (1 to 4) gives the job a fixed step per shard of that many hex
    digits instead of a dynamic fan-out, for executors that cannot map dynamic outputs
    (dagster-dask: Dagster issue #9785); its runs must then say ``shard_width`` so."""
    description = (
        "Garbage collection against the liveset in the manifests: retention, then one "
        "collect step (shard_width: 0) or one per digest-prefix shard. A dry run unless "
        "config says dry_run: false."
    )
    tags = {"s3repo/kind": "collection"}
    if fixed_shard_width is not None:
        if not 1 <= fixed_shard_width <= 4:
            raise ValueError(f"fixed_shard_width is 1 to 4 hex digits, not {fixed_shard_width}")
        plan_op = static_plan_collection(fixed_shard_width)
        shard_ops = {s: static_collect_shard(s) for s in shard_names(fixed_shard_width)}
        report_op = static_report_collection(fixed_shard_width)

        @graph(name="collect_job")
        def fixed_collect_job() -> None:
            plan = plan_op()
            reports = {f"report_{shard}": step(plan) for shard, step in shard_ops.items()}
            report_op(plan=plan, **reports)

        return checked_job(
            fixed_collect_job,
            description=description,
            tags=tags,
            executor_def=executor,
            configs={plan_op.name: CollectConfig},
        )

    @graph
    def collect_job() -> None:
        plan, shards = plan_collection()
        reports = shards.map(lambda shard: collect_shard(shard, plan))
        report_collection(plan, reports.collect())

    return checked_job(
        collect_job,
        description=description,
        tags=tags,
        executor_def=executor,
        configs={"plan_collection": CollectConfig},
    )


collect_job = make_collect_job()


def make_verify_job(executor: ExecutorDefinition | None = in_process_by_default) -> JobDefinition:
    """verify_job, on ``executor`` (None: the code location's), as ``make_collect_job``."""

    @graph
    def verify_job() -> None:
        plan, shards = plan_verification()
        reports = shards.map(lambda shard: verify_shard(shard, plan))
        report_verification(reports.collect())

    return checked_job(
        verify_job,
        description="Re-hash stored objects (all, or a sample) and report corrupt ones; "
        "one verify step (shard_width: 0) or one per digest-prefix shard. Fails if an "
        "object is corrupt; with quarantine: true, moves such objects aside so that the "
        "next put of their bytes repairs them.",
        tags={"s3repo/kind": "verification"},
        executor_def=executor,
        configs={"plan_verification": VerifyConfig},
    )


verify_job = make_verify_job()
