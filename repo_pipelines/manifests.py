"""Write a record manifest: the digests a producer still needs, as Parquet.

Rows come from upstream (ingest's output) and from digests listed in config. The
manifest is a *record* (``s3repo_core.records``): every object it names is kept first
(looked up, and refreshed if old, as a re-put would), then the record is written
within the deadline that makes records safe, so a manifest never names an object that
is not stored, and its age never holds a collection's threshold back.
"""

# No "from __future__ import annotations": Dagster reads op annotations at run time.
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import Config, In, MetadataValue, OpExecutionContext, Out, Output, op
from pydantic import Field, field_validator

from s3repo_core import Digest, InvalidArgumentError, ManifestRow, write_record_manifest

from .errors import repository_step
from .launch_checks import digest_text
from .metadata import human_size, markdown_table
from .resources import S3RepoResource

__all__ = ["ManifestConfig", "manifest_destination", "write_manifest_op"]


class ManifestConfig(Config):
    dest: str | None = Field(
        default=None,
        description="A local path or s3://bucket/key for the manifest; a directory or a "
        "prefix ending in '/' gets a file named after the time and the run. Unset: no "
        "manifest is written (the job only ingests).",
    )
    digests: list[str] = Field(default=[], description="More live digests, kept first.")

    @field_validator("digests")
    @classmethod
    def _digests(cls, digests: list[str]) -> list[str]:
        return [digest_text(text) for text in digests]

    source: str = Field(default="config", description="The source recorded for those digests.")


def manifest_destination(dest: str, run_id: str, now: datetime) -> str:
    """``dest``, or a file in it named after ``now`` and the run if it is a folder."""
    is_local_dir = not dest.startswith("s3://") and Path(dest).expanduser().is_dir()
    if dest.endswith("/") or is_local_dir:
        folder = dest if dest.endswith("/") else dest + "/"
        return f"{folder}manifest-{now:%Y%m%dT%H%M%SZ}-{run_id[:8]}.parquet"
    return dest


@op(
    name="write_manifest",
    ins={"objects": In(Any, default_value=None, description="Rows from ingest (optional).")},
    out=Out(str | None, description="Where the manifest was written, or None if not asked."),
    description="Write a record manifest of upstream objects and configured digests, each "
    "kept (looked up, refreshed if old) first.",
)
def write_manifest_op(
    context: OpExecutionContext,
    config: ManifestConfig,
    repository: S3RepoResource,
    objects: list[ManifestRow] | None,
) -> Output[str | None]:
    rows = list(objects or [])
    if config.dest is None:
        context.log.info(f"no manifest asked for (config dest is unset); {len(rows)} objects")
        return Output(None, metadata={"written": False, "objects": len(rows)})
    now = datetime.now(UTC)
    dest = manifest_destination(config.dest, context.run_id, now)
    with repository_step(f"writing manifest {dest}"):
        repo = repository.repository()
        listed = [Digest.parse(text) for text in config.digests]
        if not rows and not listed:
            raise InvalidArgumentError("an empty manifest: no upstream objects and no digests")
        started = time.monotonic()
        # Kept here, not trusted from upstream: that step may have run long ago, in
        # another process, and only what is kept now may be recorded now.
        kept = repo.keep([*(row.digest for row in rows), *listed])
        size_of = {file.digest: file.size for file in kept}
        rows += [ManifestRow(digest, size_of[digest], config.source) for digest in listed]
        info = write_record_manifest(
            repo,
            dest,
            rows,
            started=started,
            created_by=f"dagster run {context.run_id}",
            client=repository.client(),
        )
    distinct = {row.digest: row.size for row in rows}
    table = markdown_table(
        ["digest", "size", "source"],
        ((f"`{r.digest}`", human_size(r.size), r.source) for r in rows),
    )
    return Output(
        info.location,
        metadata={
            "written": True,
            "manifest": info.location,
            "rows": info.num_rows,
            "distinct digests": len(distinct),
            "live bytes": sum(distinct.values()),
            "created_at": info.created_at.isoformat(),
            "repository": repo.url,
            "rows listed": MetadataValue.md(table),
        },
    )
