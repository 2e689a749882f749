"""A tour of s3repo against a real S3 server on 127.0.0.1.

    python -m devkit.tour [--server moto|juicefs]

(``python3 dev.py tour`` runs it too.)

Starts a local S3 server (moto's by default, or the JuiceFS S3 gateway), creates a
bucket, opens ``s3r://<bucket>/demo`` with :func:`dial` and uses the API: ``put`` of
bytes and of a stream of unknown length, ``put_file``, ``stat``, ``get``, ``get_file``,
deduplication, and ``put_file`` refusing a body that does not match its digest. It
prints what happened, stops the server, and exits 0 only if every check held.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from s3repo_core import (
    Digest,
    File,
    IntegrityError,
    NotExistError,
    RepositoryError,
    S3Repository,
    dial,
    set_client,
)

from .localserver import start_server

__all__ = ["DEMO_BYTES", "DemoFailure", "main"]

#: The first object the demo puts; its digest appears in the report.
DEMO_BYTES = b"hello, s3repo\n"
BUCKET = "s3repo-demo"
PREFIX = "demo"
MiB = 1024 * 1024
STREAM_SIZE = 3 * MiB + 12_345
CHUNK = 64 * 1024


class DemoFailure(Exception):
    """A check of the demo did not hold."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailure(what)


def say(label: str, detail: str = "") -> None:
    print(f"  {label:<24} {detail}".rstrip(), flush=True)


def human(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    return f"{size / 1024:.1f} KiB" if size < MiB else f"{size / MiB:.2f} MiB"


def random_chunks(seed: int, size: int) -> Iterator[bytes]:
    """``size`` pseudo-random bytes in chunks; the same bytes for the same seed."""
    rng = random.Random(seed)
    for first in range(0, size, CHUNK):
        yield rng.randbytes(min(CHUNK, size - first))


class UnknownLengthStream:
    """A readable stream that does not know its length and cannot seek, like a pipe."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        n = len(self._buffer) if n < 0 else min(n, len(self._buffer))
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out


def file_sha256(path: Path) -> Digest:
    with path.open("rb") as f:
        return Digest(hashlib.file_digest(f, "sha256").digest())


def list_keys(client: Any, bucket: str) -> list[tuple[str, int]]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [(o["Key"], o["Size"]) for page in pages for o in page.get("Contents", [])]


def tour(repo: S3Repository, client: Any, workdir: Path) -> int:
    """Use every operation once, checking each result; the number of objects stored."""
    print("\n1. put bytes, stat and get them")
    small = repo.put(DEMO_BYTES)
    check(small == Digest.of(DEMO_BYTES), f"put returned {small}, not the bytes' digest")
    say("put(bytes)", f"{small}  {human(len(DEMO_BYTES))}")
    check(repo.stat(small) == File(small, len(DEMO_BYTES)), "stat disagrees with put")
    say("stat", f"size {repo.stat(small).size}")
    with repo.get(small) as stream:
        check(stream.read() == DEMO_BYTES, "get returned other bytes")
    say("get", "the same bytes, verified against the digest")

    print(f"\n2. put a stream of unknown length ({human(STREAM_SIZE)})")
    expected = Digest(hashlib.sha256(b"".join(random_chunks(1, STREAM_SIZE))).digest())
    big = repo.put(UnknownLengthStream(random_chunks(1, STREAM_SIZE)))
    check(big == expected, f"put returned {big}, not the stream's digest {expected}")
    say("put(stream)", f"{big}  {human(STREAM_SIZE)}")
    check(repo.stat(big).size == STREAM_SIZE, "stat gives the wrong size for the stream")
    copy = workdir / "stream.bin"
    count = repo.get_file(big, copy)
    check(count == STREAM_SIZE == copy.stat().st_size, "get_file wrote the wrong size")
    check(file_sha256(copy) == big, "get_file wrote other bytes")
    say("get_file(digest, path)", f"{human(count)} written to a file, verified")

    print("\n3. put_file a file whose digest and size are known")
    report = workdir / "report.csv"
    report.write_text("".join(f"{i},{i * i}\n" for i in range(20_000)))
    data = report.read_bytes()
    known = File(Digest.of(data), len(data))
    with report.open("rb") as body:
        repo.put_file(known, body)
    say("put_file(File, file)", f"{known.digest}  {human(known.size)}")
    check(repo.stat(known.digest) == known, "stat disagrees with put_file")
    with repo.get(known.digest) as stream:
        check(stream.read() == data, "get returned other bytes than put_file stored")
    say("stat and get", "match the file")

    print("\n4. deduplication")
    before = list_keys(client, repo.bucket)
    again = repo.put(DEMO_BYTES)
    repo.put_file(known, data)
    check(again == small, "putting the same bytes gave another digest")
    check(list_keys(client, repo.bucket) == before, "putting the same bytes stored something")
    say("put(same bytes)", f"{again}  the same digest")
    say("put_file(same file)", f"nothing new stored: still {len(before)} objects")

    print("\n5. a body that does not match its digest is refused")
    wrong = File(Digest.of(b"other bytes"), len(data))
    try:
        repo.put_file(wrong, data)
    except IntegrityError as exc:
        say("put_file(wrong digest)", f"IntegrityError: {exc}")
    else:
        raise DemoFailure("put_file accepted a body that does not hash to its digest")
    try:
        repo.stat(wrong.digest)
    except NotExistError:
        say("stat(wrong digest)", "NotExistError: nothing was stored")
    else:
        raise DemoFailure("put_file stored an object under the wrong digest")

    print(f"\n6. keys under s3://{repo.bucket}/")
    keys = list_keys(client, repo.bucket)
    for key, size in keys:
        say(f"{size:>10} B", key)
    objects = f"{repo.prefix}/objects/"
    check(all(k.startswith(objects) for k, _ in keys), "keys outside objects/ were left")
    check(len(keys) == 3, f"expected 3 objects, found {len(keys)}")
    return len(keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.tour",
        description="Start a local S3 server and show s3repo's API at work on it.",
    )
    parser.add_argument(
        "--server",
        choices=["moto", "juicefs"],
        default="moto",
        help="the S3 implementation to run on 127.0.0.1 (default: moto)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    print(f"s3repo demo: starting a {args.server} S3 server on 127.0.0.1 ...", flush=True)
    try:
        server = start_server(args.server)
    except (RepositoryError, OSError, subprocess.CalledProcessError) as exc:
        print(f"s3repo demo: FAILED: could not start {args.server}: {exc}", file=sys.stderr)
        return 1
    bucket = None
    try:
        client = server.client()
        bucket = server.create_bucket(BUCKET)
        set_client(client, bucket=bucket)
        repo = dial(f"s3r://{bucket}/{PREFIX}")
        say("server", f"{server.name} at {server.endpoint_url}")
        say("repository", f"{repo.url}  (short: {repo.short_string()})")
        with tempfile.TemporaryDirectory(prefix="s3repo-demo-") as workdir:
            stored = tour(repo, client, Path(workdir))
    except (DemoFailure, RepositoryError, OSError) as exc:
        print(f"\ns3repo demo: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if bucket is not None:
            set_client(None, bucket=bucket)
        server.stop()
    elapsed = time.monotonic() - started
    print(
        f"\ns3repo demo: OK: {stored} objects stored, all round-trips verified "
        f"({elapsed:.1f}s); server stopped."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
