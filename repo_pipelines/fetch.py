"""Fetch and stat: read objects back by digest, verified."""

# No "from __future__ import annotations": Dagster reads op annotations at run time.
import time
from pathlib import Path

from dagster import Config, MetadataValue, OpExecutionContext, Out, Output, op
from pydantic import Field, field_validator

from s3repo_core import Digest, File, stat_many

from .errors import repository_step
from .launch_checks import digest_text
from .metadata import human_size, markdown_table
from .resources import S3RepoResource

__all__ = ["FetchConfig", "StatConfig", "fetch", "stat"]


class FetchConfig(Config):
    digest: str = Field(description="The object's digest: sha256:<64 lowercase hex>.")
    dest: str = Field(description="The local path to write; replaced only once verified.")

    @field_validator("digest")
    @classmethod
    def _digest(cls, digest: str) -> str:
        return digest_text(digest)

    @field_validator("dest")
    @classmethod
    def _dest(cls, dest: str) -> str:
        if not dest.strip():
            raise ValueError("give the local path to write the object to")
        return dest


class StatConfig(Config):
    digests: list[str] = Field(description="The digests to look up.")

    @field_validator("digests")
    @classmethod
    def _digests(cls, digests: list[str]) -> list[str]:
        if not digests:
            raise ValueError("give at least one digest to look up")
        return [digest_text(text) for text in digests]


@op(
    out=Out(str, description="The local path the verified object was written to."),
    description="Download an object by digest to a local path, verified against its digest.",
)
def fetch(
    context: OpExecutionContext, config: FetchConfig, repository: S3RepoResource
) -> Output[str]:
    started = time.monotonic()
    dest = Path(config.dest).expanduser()
    with repository_step(f"fetch {config.digest}"):
        repo = repository.repository()
        digest = Digest.parse(config.digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        context.log.info(f"fetching {digest} from {repo.url} to {dest}")
        size = repo.get_file(digest, dest)
    seconds = time.monotonic() - started
    return Output(
        str(dest),
        metadata={
            "digest": str(digest),
            "size": human_size(size),
            "bytes": size,
            "repository": repo.url,
            "object": f"s3://{repo.bucket}/{repo.layout.object_key(digest)}",
            "path": MetadataValue.path(str(dest)),
            "verified": True,
            "duration (s)": round(seconds, 3),
        },
    )


@op(
    out=Out(list[File], description="Each digest with its stored size."),
    description="Look up objects by digest; fails naming every digest that is missing.",
)
def stat(context: OpExecutionContext, config: StatConfig, repository: S3RepoResource) -> Output:
    with repository_step("stat"):
        repo = repository.repository()
        files = stat_many(repo, config.digests)
    total = sum(f.size for f in files)
    table = markdown_table(
        ["digest", "size"], ((f"`{f.digest}`", human_size(f.size)) for f in files)
    )
    context.log.info(f"{len(files)} objects, {human_size(total)}, all present in {repo.url}")
    return Output(
        files,
        metadata={
            "repository": repo.url,
            "objects": len(files),
            "bytes": total,
            "objects found": MetadataValue.md(table),
        },
    )
