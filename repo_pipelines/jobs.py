"""The jobs people launch: ingest (and a manifest), a manifest alone, fetch, stat, collect,
verify."""

from __future__ import annotations

from dagster import ExecutorDefinition, Field, JobDefinition, job, multi_or_in_process_executor

from s3repo_core import shard_names

from .collection import (
    collect_shard,
    plan_collection,
    report_collection,
    static_collect_shard,
    static_plan_collection,
    static_report_collection,
)
from .fetch import fetch, stat
from .ingest import ingest
from .manifests import write_manifest_op
from .verification import plan_verification, report_verification, verify_shard

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


@job(description="Put files or directories into the repository; optionally write their manifest.")
def ingest_job() -> None:
    write_manifest_op(ingest())


@job(description="Write a liveset manifest of digests listed in config (each looked up first).")
def manifest_job() -> None:
    write_manifest_op()


@job(description="Download one object by digest to a local path, verified.")
def fetch_job() -> None:
    fetch()


@job(description="Look up objects by digest: present or not, and their sizes.")
def stat_job() -> None:
    stat()


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

        @job(name="collect_job", description=description, tags=tags, executor_def=executor)
        def fixed_collect_job() -> None:
            plan = plan_op()
            reports = {f"report_{shard}": step(plan) for shard, step in shard_ops.items()}
            report_op(plan=plan, **reports)

        return fixed_collect_job

    @job(description=description, tags=tags, executor_def=executor)
    def collect_job() -> None:
        plan, shards = plan_collection()
        reports = shards.map(lambda shard: collect_shard(shard, plan))
        report_collection(plan, reports.collect())

    return collect_job


collect_job = make_collect_job()


def make_verify_job(executor: ExecutorDefinition | None = in_process_by_default) -> JobDefinition:
    """verify_job, on ``executor`` (None: the code location's), as ``make_collect_job``."""

    @job(
        description="Re-hash stored objects (all, or a sample) and report corrupt ones; "
        "one verify step (shard_width: 0) or one per digest-prefix shard. Fails if an "
        "object is corrupt; with quarantine: true, moves such objects aside so that the "
        "next put of their bytes repairs them.",
        tags={"s3repo/kind": "verification"},
        executor_def=executor,
    )
    def verify_job() -> None:
        plan, shards = plan_verification()
        reports = shards.map(lambda shard: verify_shard(shard, plan))
        report_verification(reports.collect())

    return verify_job


verify_job = make_verify_job()
