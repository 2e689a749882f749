"""A worker process for the crash tests: runs one operation in a loop until it is killed.

    python tests/fault_workers.py CONFIG_JSON

CONFIG_JSON holds ``op`` (``put-stream``, ``put-file``, ``put_file``, ``put_files`` or
``collect``), the server's ``endpoint`` (a fault proxy), ``access_key``,
``secret_key``, ``region``, ``bucket``, ``prefix``, the repository's windows in seconds
(``refresh``, ``settle``, ``grace``), a ``seed``, a scratch ``dir`` and, for
``collect``, a ``liveset`` file of hex digests. The worker prints ``ready`` once it is
set up, then one line per result, flushed at once, so that the test knows what it
was told before the kill:

    stored <digest> <time.time() when the call returned>
    collected <count> <time>

It never stops by itself; the crash tests kill it with SIGKILL.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from s3repo_core import Digest, ExactLiveset, File, RepositoryError, S3Repository

MiB = 1024 * 1024
PART = 5 * MiB


class Pipe:
    """A stream that cannot seek: read() only."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._at = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n is None or n < 0 else min(len(self._data), self._at + n)
        chunk = bytes(self._data[self._at : end])
        self._at = end
        return chunk


def size(rng: random.Random) -> int:
    """Mostly larger than one part, so that kills land in multipart uploads."""
    r = rng.random()
    if r < 0.15:
        return rng.randint(0, 64 * 1024)
    if r < 0.35:
        return rng.randint(64 * 1024, PART)
    return rng.randint(PART + 1, 3 * PART + 1)


def say(*words: object) -> None:
    print(*words, flush=True)


def main(config: dict[str, Any]) -> None:
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=config["endpoint"],
        aws_access_key_id=config["access_key"],
        aws_secret_access_key=config["secret_key"],
        region_name=config["region"],
        config=Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=2,
            read_timeout=10,
            max_pool_connections=32,
        ),
    )
    repo = S3Repository(
        config["bucket"],
        config["prefix"],
        client=client,
        part_size=PART,
        lookahead=PART,
        concurrency=4,
        refresh_window=timedelta(seconds=config["refresh"]),
        settle=timedelta(seconds=config["settle"]),
        grace=timedelta(seconds=config["grace"]),
    )
    rng = random.Random(config["seed"])
    op = config["op"]
    scratch = Path(config["dir"])
    scratch.mkdir(parents=True, exist_ok=True)
    live = None
    if op == "collect":
        hexes = Path(config["liveset"]).read_text().split()
        live = ExactLiveset([Digest.parse(f"sha256:{h}") for h in hexes])
    time.sleep(config.get("delay", 0.0))
    say("ready")
    n = 0
    while True:
        n += 1
        try:
            if op == "collect":
                report = repo.collect(live)
                say("collected", report.collected, time.time())
                continue
            if op == "put_files":
                paths = []
                for i in range(rng.randint(2, 5)):
                    paths.append(scratch / f"{n}-{i}")
                    paths[-1].write_bytes(rng.randbytes(size(rng) // 2))
                for file in repo.put_files(paths):
                    say("stored", file.digest, time.time())
                continue
            data = rng.randbytes(size(rng))
            if op == "put-stream":
                digest = repo.put(Pipe(data))
            elif op == "put-file":
                path = scratch / str(n)
                path.write_bytes(data)
                with path.open("rb") as body:
                    digest = repo.put(body)
            elif op == "put_file":
                path = scratch / str(n)
                path.write_bytes(data)
                digest = Digest.of(data)
                with path.open("rb") as body:
                    repo.put_file(File(digest, len(data)), body)
            else:
                raise SystemExit(f"unknown op {op!r}")
            say("stored", digest, time.time())
        except RepositoryError as exc:  # the test counts these; the loop goes on
            say("failed", type(exc).__name__, time.time())


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
