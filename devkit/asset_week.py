"""A week of daily materializations and nightly collections, in moto's accelerated time.

    python -m devkit.pipelines_demo --week [--days N]

What a Dagster user of the IO manager sees after some days: each day three assets are
materialized through ``S3RepoIOManager`` (a directory of readings, one file of which
changes daily; a feature table that changes twice a week; a model built from the
features), a day passes on moto's clock, and ``collect_job`` runs for real, retiring
the records retention no longer keeps (``keep_last`` 3 or younger than 2 days here;
the defaults are 3 and 7 days) and deleting what no kept record names. It prints a
line a day and checks, at the end, that the repository holds exactly what the kept
records name: nothing a record keeps was lost, nothing else was left.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from dagster import AssetsDefinition, ExecuteInProcessResult, asset

from repo_pipelines.definitions import build_definitions
from repo_pipelines.io_manager import S3RepoIOManager
from repo_pipelines.metadata import human_size
from s3repo_core import CollectReport, Digest, S3Repository, read_liveset

if TYPE_CHECKING:
    from .pipelines_demo import Demo

__all__ = ["Day", "run_week"]

DAY_SECONDS = 86_400.0
#: The days (from 0) on which the feature table changes, and so the model.
FEATURE_DAYS = (3, 6)


@dataclass(frozen=True)
class Day:
    """One day's figures, as its line prints them."""

    number: int
    added: int
    added_bytes: int
    dedup_hits: int
    deduplicated_bytes: int
    records_kept: int
    records_retired: int
    collected: int
    reclaimed_bytes: int
    objects: int
    stored_bytes: int

    def line(self) -> str:
        return (
            f"day {self.number}: +{self.added} objects ({human_size(self.added_bytes)}), "
            f"{self.dedup_hits} stored already ({human_size(self.deduplicated_bytes)}); "
            f"records kept {self.records_kept}, retired {self.records_retired}; collected "
            f"{self.collected} ({human_size(self.reclaimed_bytes)}); now {self.objects} "
            f"objects, {human_size(self.stored_bytes)}"
        )


def week_assets(workdir: Path, today: dict[str, int]) -> list[AssetsDefinition]:
    """Readings (a directory), features (a table) and a model; ``today["n"]`` says
    what changes."""

    @asset(description="A directory of readings: today's file is new, the rest are not.")
    def readings() -> Path:
        folder = workdir / "readings"
        folder.mkdir(exist_ok=True)
        (folder / "stations.csv").write_text("".join(f"station-{i}\n" for i in range(300)))
        (folder / "calibration.json").write_text('{"offset": 0.5}\n')
        (folder / "today.csv").write_text(
            "".join(f"{i},{(i * 7 + today['n']) % 1000}\n" for i in range(3000))
        )
        return folder

    @asset(description="Features: a new table on the days in FEATURE_DAYS.")
    def features() -> pa.Table:
        version = sum(1 for day in FEATURE_DAYS if today["n"] >= day)
        weights = [i * (version + 1) for i in range(2000)]
        return pa.table({"id": list(range(2000)), "weight": weights})

    @asset(description="A model-like blob trained on the features.")
    def model(readings: Path, features: pa.Table) -> bytes:
        total = sum(int(w) for w in features.column("weight").to_pylist())
        return f"model weights for {total}\n".encode() * 2000

    return [readings, features, model]


def run_week(demo: Demo, workdir: Path, days: int) -> list[Day]:
    """``days`` days of materializations and collections with ``demo``'s jobs (on
    moto), a line printed per day."""
    from .pipelines_demo import check, say  # (it imports this module)

    check(demo.server.clock_movable, "the week needs a server whose clock can be moved (moto)")
    records = f"s3://{demo.bucket}/records/"
    io_manager = S3RepoIOManager(
        repository=demo.resource, manifests=records, keep_last=3, keep_within_days=2
    )
    today = {"n": 0}
    assets = week_assets(workdir, today)
    defs = build_definitions(demo.resource, io_manager=io_manager, assets=assets)
    say(f"a week of assets: {days} days, keep_last 3 or younger than 2 days, records in {records}")
    figures: list[Day] = []
    for n in range(days):
        today["n"] = n
        made = demo.materialize(assets, io_manager)
        check(made.success, f"materializing the assets on day {n} failed")
        added = _observed(made)
        demo.server.let_time_pass(DAY_SECONDS)  # the night passes; collection runs at 03:00
        # This repository holds asset outputs only: the records are all its manifests.
        config = {"manifests": [records], "dry_run": False}
        collected = demo.run("collect_job", {"plan_collection": {"config": config}}, defs=defs)
        report: CollectReport = collected.output_for_node("report_collection")
        plan = _plan_metadata(collected)
        day = Day(
            number=n,
            added=added["objects_added"],
            added_bytes=added["bytes_added"],
            dedup_hits=added["dedup_hits"],
            deduplicated_bytes=added["bytes_deduplicated"],
            records_kept=plan["records kept"],
            records_retired=plan["records retired"],
            collected=report.collected,
            reclaimed_bytes=report.bytes_collected,
            objects=report.scanned - report.collected,
            stored_bytes=report.scanned_bytes - report.bytes_collected,
        )
        say(day.line())
        figures.append(day)
    named = set(read_liveset(records, client=demo.resource.client()))
    stored = stored_digests(demo.resource.repository())
    lost, left = named - stored, stored - named
    check(not lost, f"{len(lost)} objects that kept records name are gone: {sorted(lost)[:3]}")
    check(not left, f"{len(left)} objects that no kept record names are left")
    say(f"after {days} days the repository holds exactly what kept records name: {len(named)}")
    return figures


def stored_digests(repo: S3Repository) -> set[Digest]:
    """Every object the repository holds, by a listing of its objects area."""
    pages = repo.client.get_paginator("list_objects_v2").paginate(
        Bucket=repo.bucket, Prefix=repo.layout.objects
    )
    return {
        Digest.parse(item["Key"].rsplit("/", 1)[1])
        for page in pages
        for item in page.get("Contents", [])
    }


def _observed(result: ExecuteInProcessResult) -> dict[str, int]:
    """The sums of the run's observations of the repository asset."""
    totals = dict.fromkeys(("objects_added", "bytes_added", "dedup_hits", "bytes_deduplicated"), 0)
    for event in result.all_events:
        if event.event_type_value == "ASSET_OBSERVATION":
            metadata = event.event_specific_data.asset_observation.metadata
            for key in totals:
                totals[key] += int(metadata[key].value)
    return totals


def _plan_metadata(result: ExecuteInProcessResult) -> dict[str, Any]:
    for event in result.all_events:
        if event.event_type_value == "STEP_OUTPUT" and event.step_output_data.output_name == "plan":
            return {k: getattr(v, "value", v) for k, v in event.step_output_data.metadata.items()}
    raise AssertionError("collect_job logged no plan")
