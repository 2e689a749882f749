"""The repository as an asset, so that Dagster plots its size and what collection reclaims.

Jobs do not materialise it (the bytes live in S3, written by many runs); they log
observations on it, whose numeric metadata the asset's page plots over time.
"""

from __future__ import annotations

from dagster import AssetKey, AssetObservation, AssetSpec

from s3repo_core import CollectReport

__all__ = ["REPOSITORY_ASSET", "REPOSITORY_SPEC", "collection_observation"]

REPOSITORY_ASSET = AssetKey(["s3repo", "repository"])

REPOSITORY_SPEC = AssetSpec(
    REPOSITORY_ASSET,
    description=(
        "The s3repo content-addressed repository. Each collection logs an observation: "
        "objects and bytes stored, live, kept as recent, and collected."
    ),
    group_name="s3repo",
    kinds={"s3"},
)


def collection_observation(report: CollectReport) -> AssetObservation:
    """What a whole-repository collection saw, as numbers to plot."""
    deleted = 0 if report.dry_run else report.collected
    reclaimed = 0 if report.dry_run else report.bytes_collected
    return AssetObservation(
        asset_key=REPOSITORY_ASSET,
        description=report.summary(),
        metadata={
            "repository": report.repository,
            "dry_run": report.dry_run,
            "objects": report.scanned - deleted,
            "bytes": report.scanned_bytes - reclaimed,
            "objects_live": report.live,
            "objects_kept_recent": report.kept_recent,
            "objects_collected": deleted,
            "bytes_reclaimed": reclaimed,
            "objects_collectable": report.collected,
            "bytes_collectable": report.bytes_collected,
        },
    )
