"""Collection at scale, against the synthetic endpoint (``bench.synthetic_s3``): issue 15.

``python -m bench.scale --objects 10000000 --latency 0.1 --shards 1,16,256`` seeds a
synthetic bucket of N objects, writes a liveset manifest of every other one (sorted,
row-grouped, cached in ``--workdir``), then for each sharding:

1. plans the collection in a process of its own (footers only): its time and peak RSS;
2. collects every shard in a process of its own, ``--parallel`` at a time (one per
   core, as the multiprocess executor would on this machine): each step reads only its
   slice of the liveset, lists and deletes its shard against the endpoint; per step its
   time, peak RSS and keys; in all, keys classified and decided per second per worker.

The endpoint runs in its own process, with ``--latency`` seconds per request (S3's are
100-300 ms), and is started afresh for each sharding (nothing deleted yet). Results go
to ``--output`` as a Markdown section, with the extrapolation to 100M objects on 16
workers that the measured figures give.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .processes import run_measured

HERE = Path(__file__).resolve().parent.parent
BUCKET = "scale"
STEP_TIMEOUT = 4 * 3600.0


# -- in a step process ---------------------------------------------------------------------


def _repository(endpoint: str) -> Any:
    from s3repo_core import S3Repository, make_client

    client = make_client(
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id="synthetic",
        secret_access_key="synthetic",
    )
    return S3Repository(BUCKET, client=client, concurrency=16)


def _rss_now() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def step_plan(endpoint: str, manifest: str, width: int, out: str) -> dict[str, Any]:
    from s3repo_core import plan_collection

    repo = _repository(endpoint)
    base = _rss_now()
    started = time.monotonic()
    plan = plan_collection(repo, [manifest], shard_width=max(width, 1))
    seconds = time.monotonic() - started
    Path(out).write_bytes(pickle.dumps(plan))
    return {"seconds": seconds, "base_rss": base, "plan_bytes": len(pickle.dumps(plan))}


def step_collect(endpoint: str, plan_path: str, shards: list[str] | None) -> dict[str, Any]:
    repo = _repository(endpoint)
    plan = pickle.loads(Path(plan_path).read_bytes())
    base = _rss_now()
    started = time.monotonic()
    live, read = plan.read_liveset_slice(shards)
    read_seconds = time.monotonic() - started
    report = repo.collect(live, threshold=plan.threshold, shards=shards, raise_on_errors=False)
    return {
        "seconds": time.monotonic() - started,
        "read_seconds": read_seconds,
        "base_rss": base,
        "liveset_bytes": live.nbytes,
        "live_digests": len(live),
        "row_groups_read": read.row_groups_read,
        "scanned": report.scanned,
        "live": report.live,
        "collected": report.collected,
        "throttled": report.throttled,
        "errors": len(report.errors),
    }


# -- the run ----------------------------------------------------------------------------------


def _manifest(workdir: Path, objects: int, seed: int) -> Path:
    """Every other synthetic digest, as a sorted manifest (written once per N and seed)."""
    path = workdir / f"live-{objects}-{seed}.parquet"
    if path.exists():
        return path
    from s3repo_core import Digest, write_manifest

    from .synthetic_s3 import SIZE, synthetic_digests

    digests = synthetic_digests(objects, seed)[::2]
    write_manifest(path, ((Digest(row.tobytes()), SIZE, "scale") for row in digests))
    return path


def _endpoint(objects: int, seed: int, latency: float, delete_rate: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.synthetic_s3",
            f"--objects={objects}",
            f"--seed={seed}",
            f"--latency={latency}",
            f"--delete-rate={delete_rate}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("port "):
        proc.kill()
        raise RuntimeError(f"the synthetic endpoint did not start: {line!r}")
    proc.port = int(line.split()[1])  # type: ignore[attr-defined]
    return proc


def _stop(proc: subprocess.Popen[str]) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    counts = proc.stdout.read()
    proc.wait(timeout=60)
    return counts.strip()


def _run_step(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    out, peak = run_measured([sys.executable, "-m", "bench.scale", *args], env, STEP_TIMEOUT)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["peak_rss"] = peak or 0
    return result


def run_sharding(
    objects: int,
    seed: int,
    latency: float,
    delete_rate: float,
    width: int,
    parallel: int,
    manifest: Path,
    workdir: Path,
) -> dict[str, Any]:
    from s3repo_core import shard_names

    endpoint = _endpoint(objects, seed, latency, delete_rate)
    url = f"http://127.0.0.1:{endpoint.port}"  # type: ignore[attr-defined]
    plan_file = workdir / f"plan-{width}.pickle"
    try:
        plan = _run_step(["plan", url, str(manifest), str(width), str(plan_file)])
        shards = ["all"] if width == 0 else shard_names(width)
        started = time.monotonic()
        with ThreadPoolExecutor(parallel) as pool:
            steps = list(pool.map(lambda s: _run_step(["collect", url, str(plan_file), s]), shards))
        wall = time.monotonic() - started
    finally:
        counts = _stop(endpoint)
    return {"width": width, "plan": plan, "steps": steps, "wall": wall, "requests": counts}


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def report(results: list[dict[str, Any]], objects: int, latency: float, parallel: int) -> str:
    lines = [
        f"### Collection at scale: {objects:,} synthetic objects, half live, "
        f"{latency * 1000:.0f} ms per request",
        "",
        "| shards | plan: time, peak RSS | shard step: peak RSS (max), liveset | keys | "
        "wall time | keys/s per worker | SlowDowns | requests |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        steps = r["steps"]
        keys = sum(s["scanned"] for s in steps)
        busy = sum(s["seconds"] for s in steps)
        worst = max(steps, key=lambda s: s["peak_rss"])
        lines.append(
            f"| {'one step' if r['width'] == 0 else f'{len(steps) - 2} (+2)'} | "
            f"{r['plan']['seconds']:.1f} s, "
            f"{_mib(r['plan']['peak_rss'])} | {_mib(worst['peak_rss'])} "
            f"({_mib(worst['peak_rss'] - worst['base_rss'])} above its start), "
            f"{_mib(worst['liveset_bytes'])} | {keys:,} | {r['wall']:.0f} s | "
            f"{keys / busy:,.0f} | {sum(s['throttled'] for s in steps):,} | {r['requests']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("plan", "collect"):
        if argv[0] == "plan":
            result = step_plan(argv[1], argv[2], int(argv[3]), argv[4])
        else:
            result = step_collect(argv[1], argv[2], None if argv[3] == "all" else [argv[3]])
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--delete-rate", type=float, default=0.0)
    parser.add_argument("--shards", default="0,1,2", help="shard widths: 0 (one step), 1, 2")
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/s3repo-scale"))
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    manifest = _manifest(args.workdir, args.objects, args.seed)
    print(f"manifest ready in {time.monotonic() - started:.0f} s: {manifest}", flush=True)
    results = []
    for width in (int(w) for w in args.shards.split(",")):
        result = run_sharding(
            args.objects,
            args.seed,
            args.latency,
            args.delete_rate,
            width,
            args.parallel,
            manifest,
            args.workdir,
        )
        print(json.dumps({k: v for k, v in result.items() if k != "steps"}), flush=True)
        (args.workdir / f"result-{args.objects}-{args.latency}-{width}.json").write_text(
            json.dumps(result)
        )
        results.append(result)
    text = report(results, args.objects, args.latency, args.parallel)
    print(text)
    if args.output is not None:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
