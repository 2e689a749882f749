"""The nightly collection, configured by the environment of the code location.

``S3REPO_MANIFESTS`` (comma-separated locations) says where the liveset is; without
it each tick is skipped with the reason. ``S3REPO_COLLECT_DELETE=true`` makes the
scheduled runs delete (they are dry runs otherwise), ``S3REPO_COLLECT_CRON`` changes
the time (default 03:00 UTC daily) and ``S3REPO_COLLECT_SCHEDULE=running`` turns the
schedule on when the code location loads (it can also be turned on in the UI).
"""

from __future__ import annotations

import os
from typing import Any

from dagster import (
    DefaultScheduleStatus,
    JobDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from .jobs import collect_job

__all__ = [
    "DEFAULT_CRON",
    "collect_run_config",
    "collection_schedule",
    "deletes_from_env",
    "manifests_from_env",
]

DEFAULT_CRON = "0 3 * * *"
_TRUE = ("1", "true", "yes", "on")


def manifests_from_env() -> list[str]:
    """The manifest locations in ``S3REPO_MANIFESTS`` (comma-separated)."""
    manifests = [m.strip() for m in os.environ.get("S3REPO_MANIFESTS", "").split(",")]
    return [m for m in manifests if m]


def deletes_from_env() -> bool:
    """Whether runs requested by the schedule and the sensor delete (``S3REPO_COLLECT_DELETE``)."""
    return os.environ.get("S3REPO_COLLECT_DELETE", "").lower() in _TRUE


def collect_run_config(manifests: list[str], *, dry_run: bool = True) -> dict[str, Any]:
    """The run config of ``collect_job`` for these manifest locations."""
    return {"ops": {"plan_collection": {"config": {"manifests": manifests, "dry_run": dry_run}}}}


def collection_schedule(job: JobDefinition = collect_job) -> ScheduleDefinition:
    """The schedule of ``job`` (a collect_job), with its cron and default status read
    from the environment now."""
    running = os.environ.get("S3REPO_COLLECT_SCHEDULE", "").lower() == "running"

    @schedule(
        name="nightly_collection",
        job=job,
        cron_schedule=os.environ.get("S3REPO_COLLECT_CRON", DEFAULT_CRON),
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING if running else DefaultScheduleStatus.STOPPED,
        description="Collect garbage against the manifests in S3REPO_MANIFESTS; a dry run "
        "unless S3REPO_COLLECT_DELETE=true.",
    )
    def nightly_collection(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        manifests = manifests_from_env()
        if not manifests:
            return SkipReason(
                "S3REPO_MANIFESTS is not set: set it to the manifest locations "
                "(e.g. s3://bucket/manifests/) in the code location's environment"
            )
        delete = deletes_from_env()
        return RunRequest(
            run_config=collect_run_config(manifests, dry_run=not delete),
            tags={"s3repo/dry_run": str(not delete).lower()},
        )

    return nightly_collection
