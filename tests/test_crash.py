"""Crash tests: ``kill -9`` of writers and of a collector at random points.

Each operation (put of a stream, put of an open file, put_file, put_files, collect)
runs in a loop in its own process (``tests/fault_workers.py``), through a fault proxy
that injects nothing but counts the requests, against its own repository, all at
once. Each process is killed with SIGKILL at a point drawn from the seed: when the
proxy receives its N-th request (before forwarding it), once the server has answered
its N-th request (before the worker hears the answer), or after a random delay.
Then, with a clean client:

- nothing under ``objects/`` fails its hash, and every object the worker printed as
  stored (or that the collector's liveset names) is there;
- the next collection is not blocked beyond the lease TTL: with ``settle`` = 1 s it
  must succeed within LEASE_PATIENCE (30 s), retrying on ConflictError;
- after a final collection past the threshold, nothing is left under ``uploads/`` or
  open as a multipart upload, and no lease remains.

``S3REPO_FAULT_SEEDS`` (long mode) runs a fifth as many rounds as fault seeds, or
``S3REPO_CRASH_ROUNDS`` rounds.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from test_faults import (
    GRACE,
    LONG,
    PART,
    REFRESH,
    SEEDS,
    SEEDS_WANTED,
    SETTLE,
    Figures,
    Payload,
    World,
    assert_no_violations,
    collect_until_done,
    figures_for,
)

from devkit.localserver import LocalS3
from s3repo_core import Digest

from faultproxy import request_kind


@pytest.fixture(scope="session")
def fault_figures(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Figures:
    return figures_for(request.config, tmp_path_factory)


WORKER = Path(__file__).with_name("fault_workers.py")
OPS = ("put-stream", "put-file", "put_file", "put_files", "collect")
#: The kill point is drawn from 1..this many requests into the worker's run.
MAX_REQUESTS = {"put-stream": 24, "put-file": 16, "put_file": 16, "put_files": 24, "collect": 70}
ROUNDS = int(os.environ.get("S3REPO_CRASH_ROUNDS", "0") or 0) or (
    max(1, SEEDS_WANTED // 5) if LONG else 1
)
#: A worker not killed by its trigger within this is killed anyway.
WORKER_LIMIT = 30.0


class Crash:
    """One worker process running ``op`` against its own world, and its kill."""

    def __init__(
        self, server: LocalS3, op: str, seed: int, directory: Path, figures: Figures
    ) -> None:
        self.op = op
        self.seed = seed
        rng = random.Random(f"{seed}:{op}:crash")
        self.mode = rng.choice(("request-before", "request-after", "delay"))
        self.at_request = rng.randint(1, MAX_REQUESTS[op])
        self.delay = rng.uniform(0.3, 2.5)
        # In long mode, half the time the collector starts once the garbage is old enough
        # to delete, so that kills land among its deletes (short mode saves the wait).
        late = op == "collect" and LONG and rng.random() < 0.5
        self.start_delay = GRACE.total_seconds() + 1.5 if late else 0.0
        self.lock = threading.Lock()
        self.killed = threading.Event()
        self.killed_at = 0.0
        self.where = ""
        self.process: subprocess.Popen[str] | None = None
        self.reader: threading.Thread | None = None
        self.stderr = ""
        self.world = World(
            server,
            "crash",
            op,
            seed,
            {},
            directory,
            figures,
            on_request=self._on_request,
            on_response=self._on_response,
        )
        self.live: set[Digest] = set()

    # -- the kill ---------------------------------------------------------------------

    def _on_request(self, number: int, method: str, path: str) -> None:
        if self.mode == "request-before" and number >= self.at_request:
            self.kill(f"on receiving request {number} ({request_kind(method, path)})")

    def _on_response(self, number: int, method: str, path: str, status: int) -> None:
        if self.mode == "request-after" and number >= self.at_request:
            self.kill(f"after the server answered request {number} ({request_kind(method, path)})")

    def kill(self, where: str) -> None:
        with self.lock:
            if self.killed.is_set() or self.process is None:
                return
            self.process.send_signal(signal.SIGKILL)
            self.killed_at = time.time()
            self.where = where
            self.killed.set()

    # -- the run -----------------------------------------------------------------------

    def start(self) -> None:
        world = self.world
        config: dict[str, Any] = {
            "op": self.op,
            "endpoint": world.proxy.endpoint_url,
            "access_key": world.server.access_key,
            "secret_key": world.server.secret_key,
            "region": world.server.region,
            "bucket": world.bucket,
            "prefix": world.repo.prefix,
            "refresh": REFRESH.total_seconds(),
            "settle": SETTLE.total_seconds(),
            "grace": GRACE.total_seconds(),
            "seed": self.seed,
            "dir": str(world.dir / "scratch"),
        }
        if self.op == "collect":
            config["liveset"] = str(self.store_garbage_and_live())
            config["delay"] = self.start_delay
        with self.lock:
            self.process = subprocess.Popen(
                [sys.executable, str(WORKER), json.dumps(config)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=WORKER.parent.parent,
            )
        self.reader = threading.Thread(target=self._read, name=f"crash-{self.op}-reader")
        self.reader.start()

    def store_garbage_and_live(self) -> Path:
        """Objects for the collector: a third named by its liveset, the rest garbage."""
        world = self.world
        rng = random.Random(f"{self.seed}:collect:objects")
        for i in range(24):
            size = PART + 1 if i % 8 == 1 else rng.choice((0, 10, 5000, 200_000))
            payload = Payload(rng.getrandbits(64), size)
            world.payloads.append(payload)
            world.clean_repo.put(payload.data())
            world.told_stored(payload.digest)
            if i % 3 == 0:
                self.live.add(payload.digest)
        path = world.dir / "liveset.txt"
        path.write_text("".join(f"{d.hex}\n" for d in self.live))
        return path

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        tally = self.world.tally
        for line in self.process.stdout:
            words = line.split()
            if not words:
                continue
            if words[0] == "ready":
                if self.mode == "delay":
                    timer = threading.Timer(
                        self.delay, self.kill, (f"{self.delay:.2f}s after it started",)
                    )
                    timer.daemon = True
                    timer.start()
            elif words[0] == "stored":
                self.world.told_stored(Digest.parse(words[1]), float(words[2]))
                tally.ops[self.op] += 1
                tally.outcomes["ok"] += 1
            elif words[0] == "collected":
                tally.ops[self.op] += 1
                tally.outcomes["ok"] += 1
            elif words[0] == "failed":
                tally.ops[self.op] += 1
                tally.outcomes[words[1]] += 1

    def wait(self) -> None:
        """Wait for the kill (or kill it at the limit) and for the process to be gone."""
        if not self.killed.wait(WORKER_LIMIT):
            self.kill(f"at the {WORKER_LIMIT:.0f}s limit (its trigger never came)")
            self.world.tally.notes["killed-at-limit"] += 1
        assert self.process is not None and self.reader is not None
        code = self.process.wait()
        self.reader.join()
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()
        self.process.stdout.close()  # type: ignore[union-attr]
        self.process.stderr.close()
        if code != -signal.SIGKILL:
            self.world.violation(
                "worker-died", f"exit {code} before the kill: {self.stderr[-800:]}", self.op
            )
        self.world.tally.faults["kill-9"] += 1
        self.world.tally.notes[f"{self.mode}"] += 1

    def check(self) -> None:
        """The invariants after the kill, then the next and the final collection."""
        world = self.world
        op = f"{self.op} killed {self.where}"
        world.stop_proxy()
        if self.op == "collect":  # every collection it ran started before the kill
            world.expose(self.live, self.killed_at)
        world.check_store(f"after the kill ({op})")
        live = self.live if self.op == "collect" else set(world.must_exist())
        blocked = collect_until_done(world, world.clean_repo, live, f"next collection ({op})")
        world.tally.notes["blocked-seconds"] += round(blocked)
        world.check_store(f"after the next collection ({op})")
        wait = world.stopped_at + GRACE.total_seconds() + 2.0 - time.time()
        if wait > 0:
            time.sleep(wait)
        collect_until_done(world, world.clean_repo, live, f"final collection ({op})")
        world.check_leftovers(f"final collection ({op})")


def test_kill_9_at_random_points(s3server: LocalS3, tmp_path: Path, fault_figures: Figures) -> None:
    """Writers and a collector, each killed mid-run; then nothing wrong, lost or left over."""
    for seed in SEEDS[:ROUNDS]:
        crashes = [
            Crash(s3server, op, seed, tmp_path / f"{seed}-{op}", fault_figures) for op in OPS
        ]
        try:
            for crash in crashes:
                crash.start()
            for crash in crashes:
                crash.wait()
            with ThreadPoolExecutor(len(crashes), thread_name_prefix="crash-check") as pool:
                for future in [pool.submit(c.check) for c in crashes]:
                    future.result()
        finally:
            for crash in crashes:
                if crash.process is not None and crash.process.poll() is None:
                    crash.process.kill()
                    crash.process.wait()
                crash.world.close()
    assert_no_violations(fault_figures, "crash", s3server.name)
