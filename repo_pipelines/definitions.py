"""Everything the code location holds, around one repository resource."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dagster import Definitions, ExecutorDefinition

from .assets import REPOSITORY_SPEC
from .jobs import (
    collect_job,
    fetch_job,
    in_process_by_default,
    ingest_job,
    make_collect_job,
    make_verify_job,
    manifest_job,
    stat_job,
    verify_job,
)
from .resources import S3RepoResource
from .schedules import collection_schedule
from .sensors import inventory_sensor

__all__ = ["build_definitions"]


def build_definitions(
    repository: S3RepoResource,
    *,
    executor: ExecutorDefinition | None = None,
    io_manager: Any = None,
    assets: Sequence[Any] = (),
    asset_checks: Sequence[Any] = (),
    jobs: Sequence[Any] = (),
    schedules: Sequence[Any] = (),
    sensors: Sequence[Any] = (),
    resources: dict[str, Any] | None = None,
    fixed_shard_width: int | None = None,
) -> Definitions:
    """The code location's definitions, with ``repository`` as the ``repository`` resource,
    and the user's own ``assets``, ``asset_checks``, ``jobs``, ``schedules``, ``sensors``
    and ``resources`` beside s3repo's.

    ``executor`` replaces Dagster's default (processes on this machine). ``io_manager``
    is every job's and asset's IO manager: an ``S3RepoIOManager`` stores assets by
    digest, writes their records (with ``manifests`` set) and lets ``collect_job``
    apply its retention; it is also storage every step can read, which the collection
    plan needs with an executor that runs steps elsewhere. ``fixed_shard_width`` gives
    collect_job a fixed step per shard, for an executor that cannot map dynamic outputs
    (Dask; see ``make_collect_job``).
    """
    every_resource: dict[str, Any] = {"repository": repository, **(resources or {})}
    if executor is None and fixed_shard_width is None:
        collect = collect_job
    else:
        collect = make_collect_job(
            None if executor is not None else in_process_by_default, fixed_shard_width
        )
    verify = verify_job if executor is None else make_verify_job(None)
    if io_manager is not None:
        every_resource["io_manager"] = io_manager
    return Definitions(
        assets=[REPOSITORY_SPEC, *assets],
        asset_checks=list(asset_checks),
        jobs=[ingest_job, manifest_job, fetch_job, stat_job, collect, verify, *jobs],
        schedules=[collection_schedule(collect), *schedules],
        sensors=[inventory_sensor(collect), *sensors],
        resources=every_resource,
        executor=executor,
    )
