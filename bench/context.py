"""What a benchmark side sees in its worker: sizes, data, a client, and the stopwatch.

The stopwatch (:meth:`Env.measure`) brackets only the operation under test and records,
over exactly that interval, the wall time, this process's CPU time and the S3 server
process's CPU time, and the number of requests sent to S3, so that a shortfall can be
pinned on the client or on the server. A side may also prepare its own state before
the stopwatch (a stored set, an aged clock), with :attr:`Env.setup_client`, whose requests
are never counted.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from devkit.clocked_moto import CLOCK_PATH

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
    large_files: int = 0  # files in the directory of larger files (re-ingest, ingest)
    large_file_size: int = 0
    many_objects: int = 0  # objects in the large collected repository, half of them live


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
    large_files=200,
    large_file_size=1 * MiB,
    many_objects=100_000,
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
    large_files=4,
    large_file_size=64 * 1024,
    many_objects=60,
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
    deletes: int | None = None  # of which DeleteObjects requests
    # The timed section on the wall clock, for the server's own count of what it received
    # in it (the runner fills in server_requests, for the cases that count on the server).
    started_at: float | None = None
    ended_at: float | None = None
    server_requests: int | None = None

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
    server: str = "-"  # "moto", "juicefs" or "-"
    server_pid: int | None = None
    clock_movable: bool = False  # the server's clock moves on POST CLOCK_PATH (moto)
    fast_put: bool = False  # the server stores many objects in one POST FAST_PUT_PATH
    params: dict[str, Any] = field(default_factory=dict)  # what the case's prepare returned
    timing: dict[str, float | None] = field(default_factory=dict)
    memory: int | None = None
    requests_sent: int = 0  # by :attr:`client`, counted only in the worker
    deletes_sent: int = 0  # DeleteObjects among them

    @classmethod
    def from_json(cls, text: str) -> Env:
        spec = json.loads(text)
        spec["sizes"] = Sizes(**{**spec["sizes"], "windows": tuple(spec["sizes"]["windows"])})
        spec["workdir"] = Path(spec["workdir"])
        return cls(**spec)

    def to_json(self) -> str:
        spec = asdict(self)
        spec["workdir"] = str(self.workdir)
        del spec["timing"], spec["memory"], spec["requests_sent"], spec["deletes_sent"]
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
        from s3repo_core._client import default_config, prepare_client

        client = prepare_client(_session().client("s3", config=default_config()))
        self._sent_lock = threading.Lock()  # the sides send from thread pools
        client.meta.events.register("before-send.s3", self._count_request)
        return client

    def _count_request(self, event_name: str = "", **_: Any) -> None:
        with self._sent_lock:
            self.requests_sent += 1
            if event_name.endswith(".DeleteObjects"):
                self.deletes_sent += 1

    @cached_property
    def built_client(self) -> Any:
        """The client a user of ``dial`` gets (``make_client``, the server from the env).

        It sends PutObject directly (``s3repo_core._leanput``), out of the sight of
        client events: a case whose side uses it counts requests on the server.
        """
        from s3repo_core import make_client

        return make_client()

    @cached_property
    def setup_client(self) -> Any:
        """A second client, never counted: for what a side stores or removes untimed."""
        from s3repo_core._client import default_config, prepare_client

        return prepare_client(_session().client("s3", config=default_config()))

    @property
    def endpoint(self) -> str:
        """The S3 server's URL (the runner points the worker at it)."""
        return os.environ["AWS_ENDPOINT_URL_S3"]

    def repo(self, prefix: str, client: Any = None, **options: Any) -> Any:
        """Our repository at ``prefix`` in the run's bucket, with the run's transfer sizes
        (``options`` may name others)."""
        from s3repo_core import S3Repository

        sizes = {
            "part_size": self.sizes.part_size,
            "lookahead": self.sizes.lookahead,
            "concurrency": self.sizes.concurrency,
        }
        return S3Repository(
            self.bucket or "", prefix, client=client or self.client, **{**sizes, **options}
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

    def move_clock(self, advance: float = 0.0, reset: bool = False) -> None:
        """Reset the server's clock, or move it ``advance`` seconds on (what is stored ages).

        Only on a server whose clock moves (moto); resetting one that cannot is a no-op.
        """
        if not self.clock_movable:
            if advance:
                raise RuntimeError(f"the {self.server} server's clock cannot be moved")
            return
        query = "reset=1" if reset else f"advance={advance!r}"
        request = urllib.request.Request(
            f"{self.endpoint}{CLOCK_PATH}?{query}", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def _fast(self, path: str, spec: dict[str, Any]) -> int:
        """POST ``spec`` to one of the server's fast paths (see ``servers``); how many
        objects it stored."""
        request = urllib.request.Request(
            f"{self.endpoint}{path}",
            data=json.dumps(spec).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            return int(json.load(response)["done"])

    def copy_prefix(self, source: str, target: str) -> int:
        """Copy every key under ``source/`` to ``target/``, server-side, untimed: through
        the fast path (moto's CopyObject, in its process). How many it copied."""
        from .servers import FAST_COPY_PATH

        if not self.fast_put:
            raise RuntimeError(f"the {self.server} server has no fast path")
        spec = {"bucket": self.bucket, "source": f"{source}/", "target": f"{target}/"}
        return self._fast(FAST_COPY_PATH, spec)

    def clear_prefix(self, prefix: str) -> None:
        """Remove every key under ``prefix/`` of the run's bucket, untimed: through the fast
        path where the server has one, else with LIST and DeleteObjects."""
        if self.fast_put:
            from .servers import FAST_DELETE_PATH

            self._fast(FAST_DELETE_PATH, {"bucket": self.bucket, "source": f"{prefix}/"})
            return
        client = self.setup_client
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{prefix}/"
        )
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})

    def put_many(self, bucket: str, objects: list[tuple[str, bytes]]) -> None:
        """Store ``objects`` (key, body) untimed: through the server's fast path where it
        has one (moto, in-process: a PUT each would take minutes for 100,000), else with
        PutObject from a thread pool."""
        if self.fast_put:
            from .servers import FAST_PUT_PATH

            for start in range(0, len(objects), 10_000):
                batch = [[key, body.decode("latin-1")] for key, body in objects[start:][:10_000]]
                self._fast(FAST_PUT_PATH, {"bucket": bucket, "objects": batch})
            return
        from concurrent.futures import ThreadPoolExecutor

        client = self.setup_client

        def put(item: tuple[str, bytes]) -> None:
            client.put_object(Bucket=bucket, Key=item[0], Body=item[1])

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, objects))

    def forget_setup_memory(self) -> None:
        """Start the peak RSS afresh (Linux clear_refs), so that a side's untimed set-up
        does not count as the timed section's memory."""
        with contextlib.suppress(OSError):  # not Linux: the peak is the process's
            Path("/proc/self/clear_refs").write_text("5")

    @contextmanager
    def measure(self) -> Iterator[None]:
        """Time the block: wall clock, our CPU (with any child's, such as s5cmd), the
        server's CPU, and the requests sent."""
        server = self.server_pid
        server_before = process_cpu(server) if server else None
        own = _cpu_seconds()
        sent_before, deletes_before = self.requests_sent, self.deletes_sent
        started_at = time.time()
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        ended_at = time.time()
        requests = self.requests_sent - sent_before
        self.timing = {
            "seconds": seconds,
            "cpu": _cpu_seconds() - own,
            "server_cpu": (
                process_cpu(server) - server_before
                if server and server_before is not None
                else None
            ),
            "requests": requests if self.bucket else None,
            "deletes": self.deletes_sent - deletes_before if self.bucket else None,
            "started_at": started_at,
            "ended_at": ended_at,
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
            deletes=None if self.timing["deletes"] is None else int(self.timing["deletes"]),
            started_at=self.timing["started_at"],
            ended_at=self.timing["ended_at"],
        )


@functools.cache
def _session() -> Any:
    """The process's boto3 session: a new one loads S3's model again (~0.15 s a client),
    while each client made from it still has its own connections and event handlers."""
    import boto3

    return boto3.session.Session()


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total
