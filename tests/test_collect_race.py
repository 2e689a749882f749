"""The race that must not lose data: writers finding objects while a collection runs.

Writers keep putting content from a small pool, much of it stored long enough ago to
be garbage, while collections with an empty liveset (the worst case) run back to back.
After each collection, every object that a writer was told is stored, and that the
guarantee in ``S3Repository``'s docstring covers, must still be there.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from devkit.localserver import LocalS3
from s3repo_core import Digest, NotExistError, S3Repository
from s3repo_core._collect import Collector
from s3repo_core.liveset import ExactLiveset

REFRESH = timedelta(milliseconds=200)
SETTLE = timedelta(milliseconds=800)
GRACE = timedelta(seconds=3, milliseconds=200)
# Objects told stored less than this before a collection started are protected from it:
# grace - refresh_window, less a margin for whole-second server times.
PROTECTED = (GRACE - REFRESH).total_seconds() - 1.5


def run_race(
    server: LocalS3,
    bucket: str,
    seconds: float,
    directory: Path,
    writers: int = 3,
    pool: int = 40,
) -> tuple[int, int, list[str]]:
    """(collections run, objects collected, violations) of one interleaving.

    Half the writers put bytes one at a time; the others put a few files at once with
    put_files, which uploads what a LIST shows absent without a HEAD.
    """
    repo = S3Repository(bucket, "race", refresh_window=REFRESH, settle=SETTLE, grace=GRACE)
    payloads = [f"pool item {i}".encode() for i in range(pool)]
    paths = []
    for i, data in enumerate(payloads):
        paths.append(directory / f"item-{i}")
        paths[-1].write_bytes(data)
    told: dict[Digest, float] = {}
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                if seed % 2:
                    stored = [f.digest for f in repo.put_files(rng.sample(paths, 3))]
                else:
                    stored = [repo.put(payloads[rng.randrange(pool)])]
                with lock:
                    for digest in stored:
                        told[digest] = time.time()
        except BaseException as exc:
            errors.append(exc)

    for item in payloads:  # stored once, then left to age into garbage
        repo.put(item)
    server.let_time_pass(GRACE.total_seconds() + 2.5)  # before any collection runs

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    rounds = collected = 0
    violations: list[str] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not errors:
            started = time.time()
            collected += repo.collect(ExactLiveset([])).collected
            rounds += 1
            with lock:
                covered = [d for d, told_at in told.items() if told_at > started - PROTECTED]
            for digest in covered:
                try:
                    repo.stat(digest)
                except NotExistError:
                    violations.append(f"round {rounds}: {digest} vanished")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    return rounds, collected, violations


def test_no_object_a_writer_was_told_is_stored_vanishes(
    s3server: LocalS3, bucket: str, monkeypatch: Any, tmp_path: Path
) -> None:
    monkeypatch.setattr(Collector, "pause_before_delete", 0.1)  # widen the race window
    rounds, collected, violations = run_race(
        s3server, bucket, seconds=12, directory=tmp_path, writers=4
    )
    assert violations == []
    assert rounds >= 10
    assert collected > 0  # the collections did delete garbage while writers ran
