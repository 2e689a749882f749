"""Ingest: files, directories or upstream bytes into the repository, by digest.

Files are stored with ``S3Repository.put_files``: concurrently (the resource's
``concurrency``), hashed, then uploaded unless already stored, which a LIST answers
for many files at once where that is cheaper than a HEAD each. The output is
one ManifestRow per input (digest, size, where it came from), in input order, which
the manifest op turns into a liveset manifest. An observation of the repository asset
says what the ingest added and what was stored already.
"""

# No "from __future__ import annotations": Dagster reads op annotations at run time.
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import Config, In, MetadataValue, OpExecutionContext, Out, Output, op
from pydantic import Field

from s3repo_core import File, InvalidArgumentError, ManifestRow, NotExistError, S3Repository
from s3repo_core.values import store_value

from .assets import stored_observation
from .errors import repository_step
from .metadata import human_size, markdown_table
from .resources import S3RepoResource

__all__ = ["Blobs", "IngestConfig", "ingest", "ingested_metadata"]

#: Seconds between progress lines while files are ingested.
PROGRESS_SECONDS = 10.0

#: What an upstream op may hand to ingest: one blob, several, or several by name.
Blobs = bytes | Sequence[bytes] | Mapping[str, bytes]


class IngestConfig(Config):
    paths: list[str] = Field(
        default=[],
        description="Files or directories (every file under them, recursively) to ingest.",
    )


def files_under(paths: Sequence[str]) -> list[Path]:
    """Every file named or under a named directory, sorted within each directory."""
    files: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise InvalidArgumentError(f"{path} is neither a file nor a directory")
        else:
            raise NotExistError(f"{path} does not exist")
    return files


def named_blobs(blobs: Blobs | None) -> Iterator[tuple[str, bytes]]:
    if blobs is None:
        return
    if isinstance(blobs, bytes | bytearray | memoryview):
        yield "upstream", bytes(blobs)
    elif isinstance(blobs, Mapping):
        yield from ((str(name), bytes(data)) for name, data in blobs.items())
    else:
        yield from ((f"upstream[{n}]", bytes(data)) for n, data in enumerate(blobs))


class Progress:
    """Logs how many files a phase has done, at most every PROGRESS_SECONDS.

    An ingest hashes every file, then stores them; each phase of a long one says how
    far it is (``verb``: "hashed", "stored").
    """

    def __init__(self, context: OpExecutionContext, total: int, verb: str) -> None:
        self._context = context
        self._total = total
        self._verb = verb
        self._count = 0
        self._bytes = 0
        self._lock = threading.Lock()
        self._started = self._logged = time.monotonic()

    def done(self, path: Path, file: File) -> None:
        with self._lock:
            self._count += 1
            self._bytes += file.size
            now = time.monotonic()
            if now - self._logged >= PROGRESS_SECONDS and self._count < self._total:
                self._logged = now
                rate = self._bytes / (1024 * 1024) / (now - self._started)
                self._context.log.info(
                    f"{self._verb} {self._count} of {self._total} files, "
                    f"{human_size(self._bytes)}, {rate:.1f} MiB/s"
                )


def ingested_metadata(
    repo: S3Repository, rows: Sequence[ManifestRow], seconds: float
) -> dict[str, Any]:
    total = sum(row.size for row in rows)
    table = markdown_table(
        ["source", "digest", "size"],
        ((r.source, f"`{r.digest}`", human_size(r.size)) for r in rows),
    )
    return {
        "repository": repo.url,
        "objects": len(rows),
        "distinct digests": len({row.digest for row in rows}),
        "bytes": total,
        "size": human_size(total),
        "duration (s)": round(seconds, 3),
        "throughput (MiB/s)": round(total / (1024 * 1024) / seconds, 1) if seconds else 0.0,
        "objects ingested": MetadataValue.md(table),
    }


@op(
    ins={"blobs": In(Any, default_value=None, description="Bytes produced upstream (optional).")},
    out=Out(list[ManifestRow], description="One row per input: digest, size, source."),
    description="Put files, directories or upstream bytes into the repository.",
)
def ingest(
    context: OpExecutionContext, config: IngestConfig, repository: S3RepoResource, blobs: Any
) -> Output[list[ManifestRow]]:
    started = time.monotonic()
    with repository_step("ingest"):
        repo = repository.repository()
        files = files_under(config.paths)
        upstream = list(named_blobs(blobs))
        if not files and not upstream:
            raise InvalidArgumentError("nothing to ingest: give paths in config or upstream bytes")
        context.log.info(
            f"ingesting {len(files)} files and {len(upstream)} upstream blobs into {repo.url}"
        )
        hashed = Progress(context, len(files), "hashed")
        progress = Progress(context, len(files), "stored")
        written: list[File] = []
        stored = (
            repo.put_files(
                files,
                on_hashed=hashed.done,
                on_stored=progress.done,
                on_written=lambda _, file: written.append(file),
            )
            if files
            else []
        )
        rows = [ManifestRow(f.digest, f.size, str(p)) for p, f in zip(files, stored, strict=True)]
        for name, data in upstream:
            value = store_value(repo, data)
            written.extend(value.written)
            rows.append(ManifestRow(value.digest, len(data), name))
    seconds = time.monotonic() - started
    objects = [File(row.digest, row.size) for row in rows]
    context.log_event(stored_observation(repo.url, objects, written, "ingest"))
    return Output(rows, metadata=ingested_metadata(repo, rows, seconds))
