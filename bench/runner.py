"""Run the cases: servers up, data written, both sides alternately, rows back.

Our side and the baseline take turns (ours first on even repetitions, the baseline first
on odd ones), so drift in the machine's load falls on both alike. Each run is a fresh
worker process; the runner only hosts the servers and waits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from devkit.localserver import LocalS3, start_server

from .cases import Case, write_data
from .context import Env, Sample, Sizes
from .stats import Row
from .worker import RESULT

ROOT = Path(__file__).resolve().parent.parent
WORKER_TIMEOUT = 900


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _spawn(env: Env, server: LocalS3 | None) -> dict[str, Any]:
    """Run ``env`` in a fresh worker process and return what it printed."""
    environ = dict(os.environ, **(server.environ() if server else {}))
    done = subprocess.run(
        [sys.executable, "-m", "bench.worker", env.to_json()],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"worker for {env.case}/{env.side} (rep {env.rep}) exited with "
            f"{done.returncode}:\n{done.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len(RESULT) :])  # type: ignore[no-any-return]


def run_case(case: Case, env: Env, server: LocalS3 | None, server_name: str) -> Row:
    """Every repetition of both sides of ``case``, alternating."""
    params = _spawn(env, server) if case.prepare else {}
    wait = params.get("ready_at", 0) - time.time()
    if wait > 0:
        log(f"{case.name} on {server_name}: waiting {wait:.0f}s for objects to age past grace")
        time.sleep(wait)
    samples: dict[str, list[Sample]] = {"ours": [], "baseline": []}
    for rep in range(env.reps):
        for side in ("ours", "baseline") if rep % 2 == 0 else ("baseline", "ours"):
            sample = Sample(**_spawn(replace(env, side=side, rep=rep, params=params), server))
            samples[side].append(sample)
            log(
                f"{case.name} on {server_name}, rep {rep + 1}/{env.reps}, {side}: "
                f"{case.scale(sample.throughput):,.1f} {case.unit} in {sample.seconds:.2f}s"
            )
    return Row(case, server_name, samples["ours"], samples["baseline"])


def run(cases: list[Case], servers: list[str], sizes: Sizes, reps: int) -> list[Row]:
    """Run ``cases`` (those needing S3 once per server) and return their rows."""
    workdir = Path(tempfile.mkdtemp(prefix="s3repo-bench-"))
    rows: list[Row] = []
    try:
        base = Env(case="", side="prepare", sizes=sizes, workdir=workdir, reps=reps)
        log(f"writing the data to {workdir}")
        write_data(base)
        remote = [case for case in cases if case.uses_server]
        for name in servers if remote else []:
            log(f"starting the {name} server")
            server = start_server(name)
            try:
                bucket = server.create_bucket()
                for case in remote:
                    env = replace(base, case=case.name, bucket=bucket, server_pid=server.pid)
                    rows.append(run_case(case, env, server, name))
            finally:
                server.stop()
        for case in cases:
            if not case.uses_server:
                rows.append(run_case(case, replace(base, case=case.name), None, "-"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows
