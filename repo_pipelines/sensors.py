"""A collection started when S3 delivers a new Inventory report of the repository.

For a bucket too large to LIST every night, S3 Inventory lists it daily or weekly; the
sensor watches where S3 writes the reports and, for each new one, requests a
``collect_job`` run whose candidates come from it (``CollectConfig.inventory``).
Configured by the code location's environment, as the nightly schedule is:

- ``S3REPO_INVENTORY``: the prefix S3 writes the reports under,
  ``s3://<destination bucket>/<destination prefix>/<source bucket>/<config id>/``;
- ``S3REPO_MANIFESTS`` (comma-separated), ``S3REPO_COLLECT_DELETE=true``, as for the
  schedule; ``S3REPO_INVENTORY_SENSOR=running`` turns the sensor on when the code
  location loads.

The cursor is the newest report a run was requested for; the report's location is the
run key, so a report is collected once however often the sensor looks.
"""

from __future__ import annotations

import os

from dagster import (
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from s3repo_core import latest_inventory

from .jobs import collect_job
from .resources import S3RepoResource
from .schedules import collect_run_config, deletes_from_env, manifests_from_env

__all__ = ["inventory_sensor"]


def inventory_sensor(job: JobDefinition = collect_job) -> SensorDefinition:
    """The sensor that runs ``job`` (a collect_job) on each new Inventory report."""
    running = os.environ.get("S3REPO_INVENTORY_SENSOR", "").lower() == "running"

    @sensor(
        name="inventory_collection",
        job=job,
        minimum_interval_seconds=15 * 60,
        default_status=DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED,
        description="Collect garbage against the manifests in S3REPO_MANIFESTS when S3 "
        "delivers a new Inventory report under S3REPO_INVENTORY; a dry run unless "
        "S3REPO_COLLECT_DELETE=true.",
    )
    def inventory_collection(
        context: SensorEvaluationContext, repository: S3RepoResource
    ) -> RunRequest | SkipReason:
        prefix = os.environ.get("S3REPO_INVENTORY", "").strip()
        manifests = manifests_from_env()
        if not prefix or not manifests:
            return SkipReason(
                "set S3REPO_INVENTORY (where S3 writes the Inventory reports, ending in "
                "'/') and S3REPO_MANIFESTS (the manifest locations) in the code "
                "location's environment"
            )
        newest = latest_inventory(prefix, client=repository.client())
        if newest is None:
            return SkipReason(f"no Inventory report under {prefix} yet")
        if context.cursor is not None and newest <= context.cursor:
            return SkipReason(f"no report newer than {context.cursor}")
        context.update_cursor(newest)
        delete = deletes_from_env()
        config = collect_run_config(manifests, dry_run=not delete)
        config["ops"]["plan_collection"]["config"]["inventory"] = newest
        return RunRequest(
            run_key=newest,
            run_config=config,
            tags={"s3repo/dry_run": str(not delete).lower(), "s3repo/inventory": newest},
        )

    return inventory_collection
