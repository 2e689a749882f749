"""The repository as an asset, so that Dagster plots its size and what collection reclaims.

Jobs do not materialise it (the bytes live in S3, written by many runs); they log
observations on it, whose numeric metadata the asset's page plots over time: each
collection its totals and what it deleted, each ingest and stored asset output what it
added and what was stored already. Every figure has its own key, so a dry run's
"collectable" never shares a series with a real collection's "collected".
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster import AssetKey, AssetObservation, AssetSpec

from s3repo_core import CollectReport, File

from .metadata import human_size

__all__ = ["REPOSITORY_ASSET", "REPOSITORY_SPEC", "collection_observation", "stored_observation"]

REPOSITORY_ASSET = AssetKey(["s3repo", "repository"])

REPOSITORY_SPEC = AssetSpec(
    REPOSITORY_ASSET,
    description=(
        "The s3repo content-addressed repository. Each collection logs an observation: "
        "objects and bytes stored, live, kept as recent, and collected; each ingest and "
        "stored output one of the objects and bytes it added and found stored already."
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


def stored_observation(
    repository: str, objects: Iterable[File], written: Iterable[File], what: str
) -> AssetObservation:
    """What storing ``objects`` added to the repository: ``written`` were uploaded, the
    others were found stored (dedup hits, which cost no upload)."""
    distinct = set(objects)
    added = set(written) & distinct
    added_bytes = sum(file.size for file in added)
    hits = len(distinct) - len(added)
    hit_bytes = sum(file.size for file in distinct) - added_bytes
    return AssetObservation(
        asset_key=REPOSITORY_ASSET,
        description=(
            f"{what}: {len(added)} objects added ({human_size(added_bytes)}), "
            f"{hits} stored already ({human_size(hit_bytes)} not uploaded)"
        ),
        metadata={
            "repository": repository,
            "objects_added": len(added),
            "bytes_added": added_bytes,
            "dedup_hits": hits,
            "bytes_deduplicated": hit_bytes,
        },
    )
