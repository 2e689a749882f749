"""Verification as a fan-out, like collection: plan the shards, verify each in its own
step, report. The work is the core's ``Repository.verify``; this module only splits it,
shows it, and fails the run when an object is bad, so that the alerts a team already has
on failed runs cover bit rot too.

The plan step also logs the repository's summary (``Repository.summary``, from listings)
as an observation, so that the repository asset's page plots objects and bytes stored
between collections too.
"""

# No "from __future__ import annotations": Dagster reads op annotations at run time.
from collections.abc import Iterator
from dataclasses import dataclass
from functools import reduce

from dagster import (
    AssetObservation,
    DynamicOut,
    DynamicOutput,
    Failure,
    MetadataValue,
    OpExecutionContext,
    Out,
    Output,
    op,
)
from pydantic import Field, field_validator

from s3repo_core import VerifyReport, digest_shards

from .assets import REPOSITORY_ASSET
from .collection import WHOLE, ShardedConfig
from .errors import repository_step
from .metadata import human_size, markdown_table
from .resources import S3RepoResource

__all__ = ["VerifyConfig", "VerifyPlan", "plan_verification", "report_verification", "verify_shard"]


class VerifyConfig(ShardedConfig):
    shard_width: int = Field(
        default=0,
        description="0: one verify step for the whole repository (objects are read in "
        "parallel threads). Hex digits per shard step to spread the reading over "
        "processes or machines: 1 gives 16 steps, 2 gives 256.",
    )
    sample: float | None = Field(
        default=None,
        description="Check each object with this probability (e.g. 0.01 for about 1 in "
        "100, a nightly spot check); unset: every object.",
    )
    quarantine: bool = Field(
        default=False,
        description="Move each corrupt object, once a second read confirms it, to "
        "quarantine/ (purged by collection after the grace), so that the next put of its "
        "bytes stores it again. Taken under a collection lease of its shard.",
    )

    @field_validator("sample")
    @classmethod
    def _sample(cls, sample: float | None) -> float | None:
        if sample is not None and not 0 < sample <= 1:
            raise ValueError("sample is a fraction in (0, 1]")
        return sample


@dataclass(frozen=True)
class VerifyPlan:
    """What every shard step verifies with."""

    sample: float | None
    quarantine: bool


@op(
    out={
        "plan": Out(VerifyPlan, description="How every shard is verified."),
        "shards": DynamicOut(str, description="One shard name per verify_shard step."),
    },
    description="Log the repository's summary, then fan out over digest-prefix shards.",
)
def plan_verification(
    context: OpExecutionContext, config: VerifyConfig, repository: S3RepoResource
) -> Iterator[Output[VerifyPlan] | DynamicOutput[str]]:
    repo = repository.repository()
    with repository_step("summarizing the repository"):
        summary = repo.summary()
    context.log_event(
        AssetObservation(
            asset_key=REPOSITORY_ASSET,
            description=f"{summary.objects.count} objects, {human_size(summary.objects.bytes)}",
            metadata={
                "repository": repo.url,
                "objects": summary.objects.count,
                "bytes": summary.objects.bytes,
                "objects_quarantined": summary.quarantine.count,
                "uploads_pending": summary.uploads.count + summary.pending_uploads,
            },
        )
    )
    yield Output(
        VerifyPlan(config.sample, config.quarantine),
        "plan",
        metadata={
            "repository": repo.url,
            "objects": summary.objects.count,
            "bytes": summary.objects.bytes,
            "sample": config.sample if config.sample is not None else 1.0,
            "quarantine": config.quarantine,
        },
    )
    width = config.shard_width
    shards = [WHOLE] if width == 0 else digest_shards(width)
    for shard in shards:
        yield DynamicOutput(shard, mapping_key=shard, output_name="shards")


@op(
    out=Out(VerifyReport, description="What this shard's verification found."),
    description="Re-hash every object of one shard (or a sample of them).",
)
def verify_shard(
    context: OpExecutionContext, repository: S3RepoResource, shard: str, plan: VerifyPlan
) -> Output[VerifyReport]:
    with repository_step(f"verifying shard {shard}"):
        report = repository.repository().verify(
            None,
            shards=None if shard == WHOLE else [shard],
            sample=plan.sample,
            quarantine=plan.quarantine,
        )
    context.log.info(f"shard {shard}: {report.summary()}")
    return Output(report, metadata=_figures(report) | {"shard": shard})


def _figures(report: VerifyReport) -> dict[str, float | int]:
    return {
        "checked": report.checked,
        "corrupt": len(report.corrupt),
        "truncated": len(report.truncated),
        "quarantined": len(report.quarantined),
        "unconfirmed": len(report.unconfirmed),
        "bytes read": report.bytes_read,
        "duration (s)": round(report.duration, 3),
    }


@op(
    out=Out(VerifyReport, description="The whole verification's report."),
    description="Merge the shards' reports, log an observation; fail if an object is bad.",
)
def report_verification(
    context: OpExecutionContext, repository: S3RepoResource, reports: list[VerifyReport]
) -> Iterator[AssetObservation | Output[VerifyReport]]:
    report = reduce(VerifyReport.merge, reports, VerifyReport())
    url = repository.repository().url
    context.log.info(report.summary())
    # Yielded, not logged: a step's logged events are lost when it then fails.
    yield AssetObservation(
        asset_key=REPOSITORY_ASSET,
        description=report.summary(),
        metadata={
            "repository": url,
            "objects_verified": report.checked,
            "bytes_verified": report.bytes_read,
            "objects_corrupt": len(report.corrupt) + len(report.truncated),
            "objects_quarantined": len(report.quarantined),
        },
    )
    bad = [
        (f"`{digest}`", finding)
        for finding in ("corrupt", "truncated", "quarantined", "unconfirmed")
        for digest in getattr(report, finding)
    ]
    metadata = {
        **_figures(report),
        "findings": MetadataValue.md(markdown_table(["digest", "finding"], bad)),
    }
    yield Output(report, metadata=metadata)
    if report.failed:
        raise Failure(description=f"{url}: {report.summary()}", metadata=metadata)
