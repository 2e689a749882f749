"""The jobs people launch: ingest (and a manifest), a manifest alone, fetch, stat, collect."""

from __future__ import annotations

from dagster import job

from .collection import collect_shard, plan_collection, report_collection
from .fetch import fetch, stat
from .ingest import ingest
from .manifests import write_manifest_op

__all__ = ["collect_job", "fetch_job", "ingest_job", "manifest_job", "stat_job"]


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


@job(
    description="Garbage collection against the liveset in the manifests: retention, "
    "then one collect step (shard_width: 0) or one per digest-prefix shard. A dry run "
    "unless config says dry_run: false.",
    tags={"s3repo/kind": "collection"},
)
def collect_job() -> None:
    plan, shards = plan_collection()
    reports = shards.map(lambda shard: collect_shard(shard, plan))
    report_collection(plan, reports.collect())
