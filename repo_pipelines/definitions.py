"""Everything the code location holds, around one repository resource."""

from __future__ import annotations

from dagster import Definitions

from .assets import REPOSITORY_SPEC
from .jobs import collect_job, fetch_job, ingest_job, manifest_job, stat_job
from .resources import S3RepoResource
from .schedules import collection_schedule

__all__ = ["build_definitions"]


def build_definitions(repository: S3RepoResource) -> Definitions:
    """The code location's definitions, with ``repository`` as the ``repository`` resource."""
    return Definitions(
        assets=[REPOSITORY_SPEC],
        jobs=[ingest_job, manifest_job, fetch_job, stat_job, collect_job],
        schedules=[collection_schedule()],
        resources={"repository": repository},
    )
