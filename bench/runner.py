"""Run the cases: servers up, data written, every side alternately, rows back.

Our side and its peers take turns (ours first on even repetitions, last on odd ones), so
drift in the machine's load falls on all alike. Each run is a fresh worker process; the
runner only hosts the servers, counts what they receive (``servers``) and waits; before
each timed run, until the server is quiet (:func:`wait_until_quiet`).
``--smoke`` measures nothing, so it runs every case of a server in one worker process
(:func:`run_case` there, each run in turn): a process costs about a second to start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from devkit.localserver import LocalS3

from .cases import Case, write_data
from .context import Env, Sample, Sizes, process_cpu
from .s5cmd import s5cmd_binary
from .servers import Tap, start_counted
from .stats import Row
from .worker import RESULT

ROOT = Path(__file__).resolve().parent.parent
WORKER_TIMEOUT = 900

#: Runs one worker's job (a prepare or a side) and returns what it printed.
Spawn = Callable[[Env], dict[str, Any]]
#: Every repetition of every side of a case, by side.
Samples = dict[str, list[Sample]]


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _worker(
    args: list[str], server: LocalS3 | None, timeout: float, passthrough: bool = False
) -> list[Any]:
    """Run ``python -m bench.worker ARGS`` and return the results it printed.

    ``passthrough``: its log goes to ours as it runs (a batch logs each run), else it is
    kept for the error.
    """
    environ = dict(os.environ, **(server.environ() if server else {}))
    done = subprocess.run(
        [sys.executable, "-m", "bench.worker", *args],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=None if passthrough else subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    results = [json.loads(line[len(RESULT) :]) for line in lines]
    if done.returncode != 0 or not results:
        told = "its log is above" if passthrough else done.stderr[-3000:]
        raise RuntimeError(f"worker exited with {done.returncode}:\n{told}")
    return results


#: A server is quiet once it uses less than this share of a core...
QUIET_SHARE = 0.05
#: ...over a window this long; a timed run waits at most QUIET_WAIT seconds for it.
QUIET_WINDOW = 0.25
QUIET_WAIT = 10.0


def wait_until_quiet(pid: int) -> float:
    """Wait (at most QUIET_WAIT) until process ``pid`` is nearly idle; the seconds waited.

    So that no timed run inherits the server's work from the run before it (a
    prepare's writes, a clean-up's deletes): the first run of a case, always ours, was
    often the slowest of its side.
    """
    began = time.monotonic()
    while time.monotonic() - began < QUIET_WAIT:
        used = process_cpu(pid)
        time.sleep(QUIET_WINDOW)
        if process_cpu(pid) - used < QUIET_SHARE * QUIET_WINDOW:
            break
    return time.monotonic() - began


def _spawn(env: Env, server: LocalS3 | None) -> dict[str, Any]:
    """Run ``env`` in a fresh worker process, once the server is quiet if ``env`` is
    timed, and return what it printed."""
    if server is not None and env.side != "prepare":
        wait_until_quiet(server.pid)
    try:
        return _worker([env.to_json()], server, WORKER_TIMEOUT)[-1]  # type: ignore[no-any-return]
    except RuntimeError as exc:
        raise RuntimeError(f"{env.case}/{env.side} (rep {env.rep}): {exc}") from None


def run_case(case: Case, env: Env, spawn: Spawn) -> Samples:
    """Every repetition of every side of ``case``, alternating; each run through ``spawn``."""
    params = spawn(replace(env)) if case.prepare else {}  # a copy: a batch's job alters it
    wait = params.get("ready_at", 0) - time.time()
    if wait > 0:
        log(f"{case.name} on {env.server}: waiting {wait:.0f}s for objects to age past grace")
        time.sleep(wait)
    samples: Samples = {side: [] for side in case.sides}
    for rep in range(env.reps):
        for side in case.sides if rep % 2 == 0 else case.sides[::-1]:
            began = time.monotonic()
            sample = Sample(**spawn(replace(env, side=side, rep=rep, params=params)))
            samples[side].append(sample)
            log(
                f"{case.name} on {env.server}, rep {rep + 1}/{env.reps}, {side}: "
                f"{case.scale(sample.throughput):,.1f} {case.unit} in {sample.seconds:.2f}s "
                f"(run: {time.monotonic() - began:.1f}s)"
            )
    return samples


def _count_on_server(case: Case, samples: Samples, tap: Tap, server: str) -> None:
    """Fill in the server's count of each sample's requests (cases that count there)."""
    if not case.count_on_server:
        return
    flat = [sample for side in samples.values() for sample in side]
    counts = tap.count((s.started_at or 0.0, s.ended_at or 0.0) for s in flat)
    for sample, count in zip(flat, counts, strict=True):
        sample.server_requests = count
    for side, runs in samples.items():
        for sample in runs:
            # A boto3 side is counted by its client too: the two counts must agree.
            if case.client_sees(side) and sample.requests != sample.server_requests:
                log(
                    f"warning: {case.name} on {server}, {side}: the server counted "
                    f"{sample.server_requests} requests, the client {sample.requests}"
                )


def _reps(case: Case, base: Env, own: bool) -> int:
    """The case's own number of repetitions, unless they were asked for."""
    return case.repetitions if own and case.repetitions else base.reps


def _run_one_by_one(
    cases: list[Case], base: Env, server: LocalS3 | None, tap: Tap, own: bool
) -> list[tuple[Case, Samples]]:
    done = []
    for case in cases:
        env = replace(base, case=case.name, reps=_reps(case, base, own))
        if case.count_on_server:
            tap.start()
        try:
            samples = run_case(case, env, lambda job: _spawn(job, server))
            _count_on_server(case, samples, tap, base.server)
        finally:
            tap.stop()
        done.append((case, samples))
    return done


def _run_batched(
    cases: list[Case], base: Env, server: LocalS3 | None, tap: Tap, own: bool
) -> list[tuple[Case, Samples]]:
    """Every case in one worker process (``--smoke``); counted on the server throughout."""
    tap.start()
    try:
        spec = {"cases": [case.name for case in cases], "env": base.to_json()}
        timeout = WORKER_TIMEOUT * len(cases)
        results = _worker(["--batch", json.dumps(spec)], server, timeout, passthrough=True)
        done = []
        for case, result in zip(cases, results, strict=True):
            samples = {side: [Sample(**s) for s in runs] for side, runs in result.items()}
            _count_on_server(case, samples, tap, base.server)
            done.append((case, samples))
    finally:
        tap.stop()
    return done


def run(
    cases: list[Case],
    servers: list[str],
    sizes: Sizes,
    reps: int,
    batched: bool = False,
    own: bool = False,
) -> list[Row]:
    """Run ``cases`` (those needing S3 once per server they run on) and return their rows.

    ``own``: a case that has its own number of repetitions runs that many instead.
    """
    if any(case.uses_s5cmd for case in cases):
        log(f"s5cmd: {s5cmd_binary()}")  # missing: fail now, before any server starts
    runner = _run_batched if batched else _run_one_by_one
    workdir = Path(tempfile.mkdtemp(prefix="s3repo-bench-"))
    rows: list[Row] = []
    try:
        base = Env(case="", side="prepare", sizes=sizes, workdir=workdir, reps=reps)
        log(f"writing the data to {workdir}")
        write_data(base)
        for name in servers:
            remote = [case for case in cases if case.uses_server and name in case.servers]
            if not remote:
                continue
            log(f"starting the {name} server")
            server, tap = start_counted(name)
            try:
                env = replace(
                    base,
                    bucket=server.create_bucket(),
                    server=name,
                    server_pid=server.pid,
                    clock_movable=server.clock_movable,
                    fast_put=tap.fast_put,
                )
                for case, samples in runner(remote, env, server, tap, own):
                    rows.append(Row(case, name, samples, sizes))
            finally:
                server.stop()
        local = [case for case in cases if not case.uses_server]
        if local:
            for case, samples in runner(local, base, None, Tap(), own):
                rows.append(Row(case, "-", samples, sizes))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows
