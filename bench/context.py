"""What a benchmark side sees in its worker: sizes, data, a client, and the stopwatch.

The stopwatch (:meth:`Env.measure`) brackets only the operation under test and records,
over exactly that interval, the wall time, this process's CPU time and the S3 server
process's CPU time, and the number of requests sent to S3, so that a shortfall can be
pinned on the client or on the server.
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sizes:
    """How big each case is: the issue's sizes, or tiny ones for ``--smoke``."""

    stream: int  # bytes of the large-object cases (put, put_file, get, get_file, dedup, hash)
    part_size: int  # multipart part size, ours and the baseline's
    lookahead: int  # S3Repository.lookahead
    concurrency: int  # threads per transfer, ours and the baseline's
    files: int  # files in the ingested directory
    file_size: int
    collect_objects: int  # objects in the collected repository, half of them live
    keys: int  # listed keys classified client side
    live: int  # digests in that liveset
    batch: int  # keys per classification call
    # refresh_window, settle, grace (seconds) of the collected repository.
    windows: tuple[float, float, float]


FULL = Sizes(
    stream=256 * MiB,
    part_size=8 * MiB,
    lookahead=64 * MiB,
    concurrency=8,
    files=2000,
    file_size=16 * 1024,
    collect_objects=20_000,
    keys=10_000_000,
    live=5_000_000,
    batch=65_536,
    windows=(1.0, 60.0, 64.0),  # settle as deployed (60 s); grace as short as allowed
)
SMOKE = Sizes(
    stream=12 * MiB,
    part_size=5 * MiB,
    lookahead=5 * MiB,
    concurrency=4,
    files=20,
    file_size=1024,
    collect_objects=40,
    keys=20_000,
    live=10_000,
    batch=4096,
    windows=(0.2, 0.4, 2.7),
)


@dataclass
class Sample:
    """One timed run of one side: how much work, and what it cost."""

    amount: float  # bytes, files, objects or keys processed
    seconds: float
    cpu: float  # CPU seconds of the worker process during the timed section
    server_cpu: float | None  # CPU seconds of the S3 server process, same interval
    peak_rss: int  # bytes: the worker's peak resident set size
    memory: int | None = None  # bytes held by the data structure, where that is the point
    requests: int | None = None  # HTTP requests sent to S3 during the timed section

    @property
    def throughput(self) -> float:
        return self.amount / self.seconds if self.seconds > 0 else float("inf")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def peak_rss() -> int:
    """This process's peak resident set size in bytes (VmHWM).

    Not ``ru_maxrss``: on Linux a child's ru_maxrss starts at its parent's peak, and the
    runner's is large (it hosts moto and its objects).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


@dataclass
class Env:
    """A worker's view of one benchmark run; built from the runner's JSON spec."""

    case: str
    side: str  # "prepare", "ours" or "baseline"
    sizes: Sizes
    workdir: Path  # the run's data: stream.bin, files/
    rep: int = 0
    reps: int = 1
    bucket: str | None = None
    server_pid: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  # what the case's prepare returned
    timing: dict[str, float | None] = field(default_factory=dict)
    memory: int | None = None
    requests_sent: int = 0  # by :attr:`client`, counted only in the worker

    @classmethod
    def from_json(cls, text: str) -> Env:
        spec = json.loads(text)
        spec["sizes"] = Sizes(**{**spec["sizes"], "windows": tuple(spec["sizes"]["windows"])})
        spec["workdir"] = Path(spec["workdir"])
        return cls(**spec)

    def to_json(self) -> str:
        spec = asdict(self)
        spec["workdir"] = str(self.workdir)
        del spec["timing"], spec["memory"], spec["requests_sent"]
        return json.dumps(spec)

    @property
    def stream_path(self) -> Path:
        return self.workdir / "stream.bin"

    @property
    def files_dir(self) -> Path:
        return self.workdir / "files"

    @cached_property
    def client(self) -> Any:
        """One boto3 client for both sides: s3repo's config, the server from the env."""
        import boto3

        from s3repo_core._client import default_config, prepare_client

        client = prepare_client(boto3.session.Session().client("s3", config=default_config()))
        self._sent_lock = threading.Lock()  # the sides send from thread pools
        client.meta.events.register("before-send.s3", self._count_request)
        return client

    def _count_request(self, **_: Any) -> None:
        with self._sent_lock:
            self.requests_sent += 1

    def repo(self, prefix: str, **options: Any) -> Any:
        """Our repository at ``prefix`` in the run's bucket, with the run's transfer sizes."""
        from s3repo_core import S3Repository

        return S3Repository(
            self.bucket or "",
            prefix,
            client=self.client,
            part_size=self.sizes.part_size,
            lookahead=self.sizes.lookahead,
            concurrency=self.sizes.concurrency,
            **options,
        )

    def transfer_config(self) -> Any:
        """boto3's TransferConfig with our part size and concurrency (the baselines')."""
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.sizes.part_size,
            multipart_chunksize=self.sizes.part_size,
            max_concurrency=self.sizes.concurrency,
            preferred_transfer_client="classic",
        )

    @contextmanager
    def measure(self) -> Iterator[None]:
        """Time the block: wall clock, our CPU, the server's CPU."""
        server = self.server_pid
        server_before = process_cpu(server) if server else None
        own = resource.getrusage(resource.RUSAGE_SELF)
        sent_before = self.requests_sent
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        requests = self.requests_sent - sent_before
        after = resource.getrusage(resource.RUSAGE_SELF)
        self.timing = {
            "seconds": seconds,
            "cpu": (after.ru_utime + after.ru_stime) - (own.ru_utime + own.ru_stime),
            "server_cpu": (
                process_cpu(server) - server_before
                if server and server_before is not None
                else None
            ),
            "requests": requests if self.bucket else None,
        }

    def sample(self, amount: float) -> Sample:
        """The sample of the block :meth:`measure` timed, for ``amount`` units of work."""
        if not self.timing:
            raise RuntimeError(f"{self.case}/{self.side} never called measure()")
        return Sample(
            amount=amount,
            seconds=float(self.timing["seconds"] or 0.0),
            cpu=float(self.timing["cpu"] or 0.0),
            server_cpu=self.timing["server_cpu"],
            peak_rss=peak_rss(),
            memory=self.memory,
            requests=None if self.timing["requests"] is None else int(self.timing["requests"]),
        )
