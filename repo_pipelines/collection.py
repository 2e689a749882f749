"""Garbage collection as a fan-out: plan once, collect each shard in its own step, report.

The plan step first applies retention: if the job's IO manager is an
``S3RepoIOManager`` that writes record manifests, the records its policy no longer
keeps are retired (``s3repo_core.retention``; a dry run only lists them) and, if the
IO manager says ``compacted``, the kept ones are copied into one sorted snapshot that
stands for them (``s3repo_core.compaction.copy_records``). It then
calls the core's ``plan_collection``, which reads the footer of every configured
manifest and of the IO manager's records (failing closed on any bad one), pins each to
the version it read and fixes the threshold. The plan holds no liveset: each shard step
reads only the row groups of its digest range (manifests are sorted by digest), of
exactly those versions, so a step's memory is its slice.

The step emits the plan and one dynamic output: the whole repository (``shard_width``
0, whose one step lists the shards in threads), or one per digest-prefix shard; unset,
the width comes from the liveset's size (``suggested_shard_width``). The executor runs
shards in parallel: in processes here, on machines with the Kubernetes, Celery or Dask
executors (Dask with a fixed step per shard, ``static_plan_collection`` and the rest:
dagster-dask maps no dynamic outputs). The plan travels to the shard steps through the
IO manager, which must then be storage every step can read (``S3RepoIOManager`` is;
its records of the plan are kept by run age). The report step merges the shards'
reports and logs them as an observation of the repository asset. With ``inventory``
set, the shards take their candidates from an S3 Inventory report instead of listing.
"""

# No "from __future__ import annotations": Dagster reads op annotations at run time.
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any, Literal

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    Config,
    DagsterInstance,
    DynamicOut,
    DynamicOutput,
    Failure,
    In,
    MetadataValue,
    OpDefinition,
    OpExecutionContext,
    Out,
    Output,
    ResourceParam,
    op,
)
from pydantic import Field, field_validator

from s3repo_core import (
    CollectReport,
    Inventory,
    PlannedCollection,
    RecordsCopy,
    RetentionDecision,
    S3Repository,
    apply_retention,
    copy_records,
    decide_retention,
    read_manifest_infos,
    shard_names,
    suggested_shard_width,
)
from s3repo_core import plan_collection as plan_from_manifests
from s3repo_core.inventory import find_inventory
from s3repo_core.retention import Latest

from .assets import collection_observation
from .errors import repository_step
from .io_manager import S3RepoIOManager
from .metadata import human_size, markdown_table
from .resources import S3RepoResource

__all__ = [
    "CollectConfig",
    "CollectionPlan",
    "ShardedConfig",
    "collect_shard",
    "plan_collection",
    "report_collection",
    "report_table",
]


#: The one "shard" of a collection in one step: every shard of the repository.
WHOLE = "all"


class ShardedConfig(Config):
    """The check of ``shard_width`` that every fanned-out job's config shares."""

    @field_validator("shard_width", check_fields=False)
    @classmethod
    def _width(cls, width: int | None) -> int | None:
        if width is not None and not 0 <= width <= 4:
            raise ValueError("shard_width is 0 (one step) to 4 hex digits")
        return width


class CollectConfig(ShardedConfig):
    manifests: list[str] = Field(
        description="Where the live manifests are: paths, s3://bucket/key, or a directory "
        "or s3://bucket/prefix/ (ending in '/') meaning every *.parquet under it. The "
        "records of the job's S3RepoIOManager are read too, never alone: what is stored "
        "by other means is named by these.",
    )
    dry_run: bool = Field(
        default=True, description="Delete nothing, only report. Set false to delete."
    )
    grace_seconds: float | None = Field(
        default=None,
        description="Keep what was modified within this long before the oldest manifest "
        "was written. Unset: the repository's grace (24 h by default); never less.",
    )
    liveset: Literal["exact", "bloom"] = Field(
        default="exact",
        description="exact: 32 bytes per live digest; bloom: about 1.2 bytes at 1% false "
        "positives (which only keep some garbage until a later collection).",
    )
    inventory: str | None = Field(
        default=None,
        description="An S3 Inventory report of the repository's bucket to take the "
        "candidates from instead of listing every shard: its manifest.json "
        "(s3://bucket/.../manifest.json) or the prefix S3 writes reports under (ending "
        "in '/': the newest one there). Every candidate is looked at again (a LIST of "
        "its page's range) before its delete.",
    )
    shard_width: int | None = Field(
        default=None,
        description="0: one collect step for the whole repository, which lists its 16 "
        "digest shards in parallel threads (fastest on one machine: one step to start). "
        "Hex digits per shard step to spread it over processes or machines: 1 gives 16 "
        "digest shards (+2), 2 gives 256. Unset: from the liveset's size, one step below "
        "5 million live digests, 16 shards below 50 million, 256 above.",
    )


@dataclass(frozen=True)
class CollectionPlan:
    """What every shard step collects against: the core's plan (the same liveset and
    threshold for all), and whether this run deletes."""

    planned: PlannedCollection
    dry_run: bool
    #: Where the candidates come from instead of a LIST of each shard, if anywhere.
    inventory: Inventory | None = None
    #: The shard steps: 0 for one step of the whole repository, else hex digits.
    shard_width: int = 0


@op(
    out={
        "plan": Out(CollectionPlan, description="The liveset and threshold for every shard."),
        "shards": DynamicOut(str, description="One shard name per collect_shard step."),
    },
    description="Retire the records retention no longer keeps, read the liveset from the "
    "manifests and the rest, fix the threshold, fan out over shards.",
)
def plan_collection(
    context: OpExecutionContext,
    config: CollectConfig,
    repository: S3RepoResource,
    io_manager: ResourceParam[Any],
) -> Iterator[Output[CollectionPlan] | DynamicOutput[str]]:
    plan = make_plan(context, config, repository, io_manager)
    yield plan
    for shard in (WHOLE,) if plan.value.shard_width == 0 else plan.value.planned.shards:
        yield DynamicOutput(shard, mapping_key=shard, output_name="shards")


def make_plan(
    context: OpExecutionContext,
    config: CollectConfig,
    repository: S3RepoResource,
    io_manager: Any,
) -> Output[CollectionPlan]:
    """What a plan step does, whichever way its job fans out: retention, the plan."""
    repo = repository.repository()
    grace = None if config.grace_seconds is None else timedelta(seconds=config.grace_seconds)
    if grace is not None and grace < repo.grace:
        raise Failure(
            description=f"grace_seconds {config.grace_seconds:g} is shorter than the "
            f"repository's grace ({repo.grace.total_seconds():g} s): writers could lose "
            "objects; leave it unset or make it longer",
        )
    decision: RetentionDecision | None = None
    copied: RecordsCopy | None = None
    records: list[str] = []
    iom = io_manager if isinstance(io_manager, S3RepoIOManager) else None
    if iom is not None and iom.manifests is not None:
        with repository_step(f"applying retention to the records under {iom.manifests}"):
            listed_at = repo.server_now()
            decision = decide(context, iom, repo, repository.client())
            context.log.info(
                f"retention: {decision.summary()}"
                + (" (dry run: none retired)" if config.dry_run else "")
            )
            kept = [judged.record.location for judged in decision.kept]
            if config.dry_run:
                # What the collection would do once they are gone: plan without them.
                records = kept
            elif iom.compacted is None:
                apply_retention(decision, client=repository.client())
                records = [iom.manifests]  # listed again: records written meanwhile count
            else:
                apply_retention(decision, client=repository.client())
                # Copied after retention, so that no retired record stays live in it.
                copied = copy_records(
                    kept,
                    iom.manifests,
                    iom.compacted,
                    listed_at=listed_at,
                    grace=repo.grace,
                    client=repository.client(),
                )
                records = copied.locations
                context.log.info(
                    f"{len(kept)} kept records copied into "
                    f"{copied.copy.location if copied.copy else '(none: no record kept)'}; "
                    f"{len(copied.recent)} recent records read as they are"
                )
    with repository_step("reading the liveset manifests"):
        planned = plan_from_manifests(
            repo,
            config.manifests,
            grace=grace,
            liveset=config.liveset,
            shard_width=max(config.shard_width or 0, 1),
            records=records,
            client=repository.client(),
        )
    inventory = None
    if config.inventory is not None:
        with repository_step(f"reading the inventory report at {config.inventory}"):
            inventory = find_inventory(config.inventory, client=repository.client())
        context.log.info(
            f"candidates from the inventory report {inventory.location}, begun "
            f"{inventory.created_at.isoformat()} ({len(inventory.files)} files)"
        )
    width = config.shard_width
    if width is None:
        width = suggested_shard_width(planned.live_rows)
        planned = replace(planned, shards=tuple(shard_names(max(width, 1))))
    plan = CollectionPlan(planned, config.dry_run, inventory, width)
    context.log.info(f"{'dry run' if plan.dry_run else 'collecting'} {planned.summary()}")
    metadata: dict[str, Any] = {
        "repository": repo.url,
        "dry_run": plan.dry_run,
        "manifests": MetadataValue.md("\n".join(f"- `{m}`" for m in planned.locations)),
        "live rows": planned.live_rows,
        "oldest manifest": planned.oldest_manifest.isoformat(),
        "threshold": planned.threshold.isoformat(),
        "shard steps": 1 if width == 0 else len(planned.shards),
    }
    if inventory is not None:
        metadata["inventory"] = inventory.location
        metadata["inventory begun"] = inventory.created_at.isoformat()
    if decision is not None:
        metadata.update(retention_metadata(decision, config.dry_run))
    if copied is not None:
        metadata["records copied into"] = copied.copy.location if copied.copy else "(none)"
        metadata["records read as they are"] = len(copied.recent)
    return Output(plan, "plan", metadata=metadata)


def static_plan_collection(width: int) -> OpDefinition:
    """plan_collection for a job with one fixed step per shard of ``width`` hex digits
    (see ``make_collect_job``): the same plan, and no dynamic output."""

    @op(
        name="plan_collection",
        out={"plan": Out(CollectionPlan, description="The threshold and the pinned manifests.")},
        description="Retire the records retention no longer keeps, pin the liveset's "
        f"manifests, fix the threshold, for {16**width + 2} fixed shard steps.",
    )
    def plan_fixed(
        context: OpExecutionContext,
        config: CollectConfig,
        repository: S3RepoResource,
        io_manager: ResourceParam[Any],
    ) -> Output[CollectionPlan]:
        if config.shard_width not in (None, width):
            raise Failure(
                description=f"this collect_job has a fixed step per shard of {width} hex "
                f"digits: set shard_width: {width} (it is {config.shard_width})"
            )
        fixed = config.model_copy(update={"shard_width": width})
        return make_plan(context, fixed, repository, io_manager)

    return plan_fixed


def decide(
    context: OpExecutionContext, iom: S3RepoIOManager, repo: S3Repository, client: Any
) -> RetentionDecision:
    """Which of the IO manager's records its policy keeps, by Dagster's event log."""
    assert iom.manifests is not None
    default = iom.retention_policy()
    return decide_retention(
        read_manifest_infos(iom.manifests, client=client),
        now=repo.server_now(),
        latest=latest_runs(context.instance),
        policy=default,  # for records that carry no policy of their own
        default=default,
        too_young=repo.grace,
    )


def latest_runs(instance: DagsterInstance) -> Latest:
    """Dagster's order of materializations: the runs of the newest ``n`` of an asset."""

    def latest(asset: str, partition: str | None, n: int) -> list[str]:
        found = instance.fetch_materializations(
            AssetRecordsFilter(
                asset_key=AssetKey.from_user_string(asset),
                asset_partitions=None if partition is None else [partition],
            ),
            limit=n,
        )
        return [record.run_id for record in found.records]

    return latest


def retention_metadata(decision: RetentionDecision, dry_run: bool) -> dict[str, Any]:
    """What the plan step shows of retention: counts, and each record retired and why."""
    retired = "records to retire" if dry_run else "records retired"
    table = markdown_table(
        ["record", "asset", "written", "why"],
        (
            (
                f"`{j.record.location}`",
                j.asset or "(op output)",
                j.record.created_at.isoformat(),
                j.reason,
            )
            for j in decision.retired[:100]
        ),
    )
    return {
        "records kept": len(decision.kept),
        retired: len(decision.retired),
        f"{retired} (first 100)": MetadataValue.md(table),
    }


@op(
    out=Out(CollectReport, description="What this shard's collection did."),
    description="Collect one shard against the plan's liveset and threshold.",
)
def collect_shard(
    context: OpExecutionContext, repository: S3RepoResource, shard: str, plan: CollectionPlan
) -> Output[CollectReport]:
    return collect_one(context, repository, shard, plan)


def static_collect_shard(shard: str) -> OpDefinition:
    """collect_shard for one fixed shard (see ``static_plan_collection``)."""

    @op(
        name=f"collect_shard_{shard}",
        out=Out(CollectReport, description=f"What the collection of shard {shard} did."),
        description=f"Collect shard {shard} against the plan's liveset and threshold.",
    )
    def collect_fixed(
        context: OpExecutionContext, repository: S3RepoResource, plan: CollectionPlan
    ) -> Output[CollectReport]:
        return collect_one(context, repository, shard, plan)

    return collect_fixed


def collect_one(
    context: OpExecutionContext, repository: S3RepoResource, shard: str, plan: CollectionPlan
) -> Output[CollectReport]:
    """What a shard step does: read its slice of the liveset, collect its shard."""
    shards = None if shard == WHOLE else [shard]
    with repository_step(f"reading the liveset of shard {shard}"):
        liveset, read = plan.planned.read_liveset_slice(shards, client=repository.client())
    context.log.info(f"read {read.summary()}")
    with repository_step(f"collecting shard {shard}"):
        repo = repository.repository()
        report = repo.collect(
            liveset,
            threshold=plan.planned.threshold,
            dry_run=plan.dry_run,
            shards=shards,
            raise_on_errors=False,
            inventory=plan.inventory,
        )
    context.log.info(report.summary())
    return Output(
        report,
        metadata={
            "shard": shard,
            "scanned": report.scanned,
            "live": report.live,
            "kept as recent": report.kept_recent,
            "collected" if not plan.dry_run else "would collect": report.collected,
            "bytes": report.bytes_collected,
            "delete errors": len(report.errors),
            "duration (s)": round(report.duration, 3),
            "live digests read": read.digests,
            "manifest row groups read": f"{read.row_groups_read} of {read.row_groups}",
        },
    )


def report_table(report: CollectReport) -> str:
    """What collection kept and deleted, by category, as a Markdown table."""
    rows = [
        (category, objects, "" if size is None else human_size(size))
        for category, objects, size in report.rows()
    ]
    return markdown_table(["category", "objects", "size"], rows)


@op(
    out=Out(CollectReport, description="The whole collection's report."),
    description="Merge the shards' reports, log an observation of the repository.",
)
def report_collection(
    context: OpExecutionContext, plan: CollectionPlan, reports: list[CollectReport]
) -> Output[CollectReport]:
    return merge_reports(context, plan, reports)


def static_report_collection(width: int) -> OpDefinition:
    """report_collection for the fixed shard steps (see ``static_plan_collection``):
    an input per shard, not a fan-in, which dagster-dask hands over empty (its steps
    run with the plan's state from before any step ran)."""
    ins = {"plan": In(CollectionPlan)}
    ins.update({f"report_{shard}": In(CollectReport) for shard in shard_names(width)})

    @op(
        name="report_collection",
        ins=ins,
        out=Out(CollectReport, description="The whole collection's report."),
        description="Merge the shards' reports, log an observation of the repository.",
    )
    def report_fixed(
        context: OpExecutionContext, plan: CollectionPlan, **reports: CollectReport
    ) -> Output[CollectReport]:
        return merge_reports(context, plan, list(reports.values()))

    return report_fixed


def merge_reports(
    context: OpExecutionContext, plan: CollectionPlan, reports: list[CollectReport]
) -> Output[CollectReport]:
    """What a report step does: merge the shards' reports, show and observe them."""
    if not reports:
        raise Failure(description="no shard reported: nothing to merge")
    report = reduce(CollectReport.merge, sorted(reports, key=lambda r: r.shards))
    context.log_event(collection_observation(report))
    seconds = (datetime.now(UTC) - plan.planned.planned_at).total_seconds()
    metadata = {
        "repository": report.repository,
        "dry_run": report.dry_run,
        "threshold": report.threshold.isoformat(),
        "objects scanned": report.scanned,
        "bytes scanned": report.scanned_bytes,
        "objects live": report.live,
        "objects kept as recent": report.kept_recent,
        "objects collected" if not report.dry_run else "objects to collect": report.collected,
        "bytes reclaimed" if not report.dry_run else "bytes to reclaim": report.bytes_collected,
        "reclaimed": human_size(report.bytes_collected),
        "delete errors": len(report.errors),
        "duration (s)": round(seconds, 3),
        "slowest shard (s)": round(report.duration, 3),
        "by category": MetadataValue.md(report_table(report)),
    }
    if report.invalid_keys:
        metadata["invalid keys"] = MetadataValue.md(
            "\n".join(f"- `{key}`" for key in report.invalid_keys[:50])
        )
    context.log.info(report.summary())
    if report.failed:
        shown = ", ".join(f"{e.key} ({e.code})" for e in report.errors[:5])
        raise Failure(
            description=f"the server refused {len(report.errors)} deletions: {shown}; "
            "nothing else was affected, the next collection retries them",
            metadata=metadata,
        )
    return Output(report, metadata=metadata)
