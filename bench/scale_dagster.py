"""The scale benchmark's shardings as ``collect_job`` runs on Dagster's multiprocess executor.

``python -m bench.scale_dagster --objects 10000000 --latency 0.1 --shards 1,2`` uses the
endpoint and manifest of ``bench.scale`` (each sharding on a fresh endpoint), and runs
the code location's own ``collect_job`` (``build_definitions``) for real, launched with
``execute_job`` on an instance in ``--workdir``: ``max_concurrent: --parallel`` step
processes, started as the README recommends (a forkserver that has imported Dagster and
``repo_pipelines``; ``--start-method spawn`` for Dagster's default).

``bench.scale`` runs each shard as a plain process, which leaves out what Dagster adds
to a step. This measures it, from the run's event log: for each step, the time from
the executor's launch of its process to STEP_START (the step start), and from launch
to STEP_SUCCESS less the collection's own duration (everything Dagster adds, the
report's pickling through the IO manager included). Step processes' peak RSS is
polled from /proc. Results go to ``--output`` as a Markdown section.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from .processes import peak_rss
from .scale import BUCKET, _endpoint, _manifest, _stop


def scale_collect_job() -> Any:
    """The code location's collect_job (rebuilt by each step process from this module);
    the run config says where the endpoint is: the executor's forkserver outlives a
    run, and with it the environment it started with."""
    from repo_pipelines import S3RepoResource, build_definitions

    return build_definitions(S3RepoResource(bucket=BUCKET)).get_job_def("collect_job")


def resource_config(endpoint: str) -> dict[str, Any]:
    return {
        "bucket": BUCKET,
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "access_key_id": "synthetic",
        "secret_access_key": "synthetic",
        "concurrency": 16,
    }


class DescendantPeaks:
    """The peak RSS of every step process below this one, polled from /proc until stopped."""

    def __init__(self, interval: float = 0.2) -> None:
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(interval,), daemon=True)

    def __enter__(self) -> DescendantPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self, interval: float) -> None:
        me = os.getpid()
        while not self._stop.wait(interval):
            parents: dict[int, int] = {}
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    except OSError:
                        continue
                    parents[int(entry.name)] = int(fields[1])
            for pid in parents:
                up = parents.get(pid)
                while up is not None and up != me and up > 1:
                    up = parents.get(up)
                step = up == me and self._is_step(pid, parents[pid] == me)
                if step and (rss := peak_rss(pid)) is not None:
                    self.peaks[pid] = max(rss, self.peaks.get(pid, 0))

    @staticmethod
    def _is_step(pid: int, child: bool) -> bool:
        """Not the endpoint, a resource tracker, or the forkserver (its steps' parent)."""
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        if b"bench.synthetic_s3" in command or b"resource_tracker" in command:
            return False
        return not (child and b"forkserver" in command)


def step_times(instance: Any, run_id: str) -> dict[str, dict[str, float]]:
    """Per step key: its launch, start and success times, and its collection's duration."""
    from dagster import DagsterEventType

    steps: dict[str, dict[str, float]] = defaultdict(dict)
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        times = steps[event.step_key]
        kind = event.event_type
        if kind == DagsterEventType.STEP_WORKER_STARTING:
            times["launch"] = entry.timestamp
        elif kind == DagsterEventType.STEP_START:
            times["start"] = entry.timestamp
        elif kind == DagsterEventType.STEP_SUCCESS:
            times["success"] = entry.timestamp
        elif kind == DagsterEventType.STEP_OUTPUT:
            metadata = event.event_specific_data.metadata
            if "duration (s)" in metadata and "scanned" in metadata:  # a shard step's
                times["collect"] = float(metadata["duration (s)"].value)
                times["scanned"] = float(metadata["scanned"].value)
    return dict(steps)


def run_sharding(
    objects: int,
    seed: int,
    latency: float,
    width: int,
    parallel: int,
    start_method: str,
    manifest: Path,
    workdir: Path,
) -> dict[str, Any]:
    from dagster import DagsterInstance, build_reconstructable_job, execute_job

    endpoint = _endpoint(objects, seed, latency, 0.0)
    url = f"http://127.0.0.1:{endpoint.port}"  # type: ignore[attr-defined]
    home = workdir / f"dagster-home-{width}-{start_method}"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    method: dict[str, Any] = {"spawn": {}}
    if start_method == "forkserver":
        method = {"forkserver": {"preload_modules": ["dagster", "repo_pipelines"]}}
    run_config = {
        "ops": {
            "plan_collection": {
                "config": {"manifests": [str(manifest)], "dry_run": False, "shard_width": width}
            }
        },
        "execution": {
            "config": {"multiprocess": {"max_concurrent": parallel, "start_method": method}}
        },
        "resources": {"repository": {"config": resource_config(url)}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    try:
        with DagsterInstance.from_config(str(home)) as instance, DescendantPeaks() as peaks:
            started = time.monotonic()
            # By module name: run as __main__, this file's functions have no importable home.
            job = build_reconstructable_job("bench.scale_dagster", "scale_collect_job")
            with execute_job(job, instance=instance, run_config=run_config) as result:
                wall = time.monotonic() - started
                if not result.success:
                    raise RuntimeError(f"collect_job failed at width {width}")
                steps = step_times(instance, result.run_id)
    finally:
        counts = _stop(endpoint)
    return {
        "width": width,
        "start_method": start_method,
        "wall": wall,
        "steps": steps,
        "peak_rss": sorted(peaks.peaks.values()),
        "requests": counts,
    }


def _summary(result: dict[str, Any]) -> dict[str, float]:
    steps = list(result["steps"].values())
    shards = [s for s in steps if "collect" in s and "launch" in s]
    start = [s["start"] - s["launch"] for s in steps if "start" in s and "launch" in s]
    added = [s["success"] - s["launch"] - s["collect"] for s in shards]
    busy = sum(s["success"] - s["launch"] for s in shards)
    return {
        "steps": len(steps),
        "start_median": statistics.median(start),
        "start_max": max(start),
        "added_median": statistics.median(added),
        "keys": sum(s["scanned"] for s in shards),
        "collect_median": statistics.median(s["collect"] for s in shards),
        "keys_per_worker_s": sum(s["scanned"] for s in shards) / busy,
    }


def report(results: list[dict[str, Any]], objects: int, latency: float, parallel: int) -> str:
    lines = [
        f"### collect_job on the multiprocess executor: {objects:,} synthetic objects, half "
        f"live, {latency * 1000:.0f} ms per request, {parallel} steps at a time",
        "",
        "| shards | start method | wall time | steps | step start (median, max) | "
        "Dagster's cost per shard step (median) | collection per shard step (median) | "
        "keys/s per worker | step peak RSS (max) | requests |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        s = _summary(r)
        peak = max(r["peak_rss"]) if r["peak_rss"] else 0
        lines.append(
            f"| {16 ** r['width']} (+2) | {r['start_method']} | {r['wall']:.0f} s | "
            f"{s['steps']:.0f} | {s['start_median']:.2f} s, {s['start_max']:.2f} s | "
            f"{s['added_median']:.2f} s | {s['collect_median']:.2f} s | "
            f"{s['keys_per_worker_s']:,.0f} | {peak / 2**20:,.0f} MiB | {r['requests']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--shards", default="1,2", help="shard widths: 1 (16 steps), 2 (256)")
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--start-method", choices=["forkserver", "spawn"], default="forkserver")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/s3repo-scale"))
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(args.workdir, args.objects, args.seed)
    results = []
    for width in (int(w) for w in args.shards.split(",")):
        result = run_sharding(
            args.objects,
            args.seed,
            args.latency,
            width,
            args.parallel,
            args.start_method,
            manifest,
            args.workdir,
        )
        summary = _summary(result)
        print(json.dumps({"width": width, "wall": result["wall"], **summary}), flush=True)
        name = f"dagster-{args.objects}-{args.latency}-{width}-{args.start_method}.json"
        (args.workdir / name).write_text(json.dumps(result))
        results.append(result)
    text = report(results, args.objects, args.latency, args.parallel)
    print(text)
    if args.output is not None:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
