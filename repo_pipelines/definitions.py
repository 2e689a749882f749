"""Everything the code location holds, around one repository resource."""

from __future__ import annotations

from typing import Any

from dagster import Definitions, ExecutorDefinition

from .assets import REPOSITORY_SPEC
from .jobs import collect_job, fetch_job, ingest_job, manifest_job, stat_job
from .resources import S3RepoResource
from .schedules import collection_schedule

__all__ = ["build_definitions"]


def build_definitions(
    repository: S3RepoResource,
    *,
    executor: ExecutorDefinition | None = None,
    io_manager: Any = None,
) -> Definitions:
    """The code location's definitions, with ``repository`` as the ``repository`` resource.

    ``executor`` replaces Dagster's default (processes on this machine); with an
    executor that runs steps elsewhere, give an ``io_manager`` that every step can
    read, since the collection plan's liveset travels to the shard steps as an output.
    """
    resources: dict[str, Any] = {"repository": repository}
    if io_manager is not None:
        resources["io_manager"] = io_manager
    return Definitions(
        assets=[REPOSITORY_SPEC],
        jobs=[ingest_job, manifest_job, fetch_job, stat_job, collect_job],
        schedules=[collection_schedule()],
        resources=resources,
        executor=executor,
    )
