"""The race that must not lose data: writers finding objects while a collection runs.

Writers keep putting content from a small pool, all of it stored long enough ago to be
garbage, while collections with an empty liveset (the worst case) run back to back.
After each collection, every object a writer was told is stored, and that the
guarantee in ``Repository``'s docstring covers, must still be there.

Objects are aged once, before any collection runs (``impl.age``); the race itself runs
in real time, as it must: leases and settle waits are timed by this process's clock.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from contract_kit import Impl
from race_kit import run_race

from s3repo_core import Digest
from s3repo_core._collect import Collector
from s3repo_core.liveset import ExactLiveset

# A settle long enough that a delete can be held 0.4 s between its decision and its
# request (a quarter of settle is as long as a decision may be acted on unchecked): the
# race window a writer must wait out after finding or refreshing an object.
REFRESH = timedelta(seconds=1)  # outlasts a pass of refreshes on a busy machine
SETTLE = timedelta(seconds=2)
GRACE = timedelta(seconds=5, milliseconds=500)
PAUSE_BEFORE_DELETE = 0.4
# Objects told stored less than this before a collection started are protected from it:
# grace - refresh_window, less a margin for whole-second server times.
PROTECTED = (GRACE - REFRESH).total_seconds() - 1.5
SECONDS = 12
ROUNDS = 10  # collections at least, however long they take


@pytest.mark.parametrize("touch_records", [False, True], ids=["refresh-each", "touch-records"])
def test_no_object_a_writer_was_told_is_stored_vanishes(
    impl: Impl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, touch_records: bool
) -> None:
    monkeypatch.setattr(Collector, "pause_before_delete", PAUSE_BEFORE_DELETE)
    repo = impl.make(refresh_window=REFRESH, settle=SETTLE, grace=GRACE)
    if touch_records:  # writers keep what they find with touch records, not a copy each
        repo.enable_touch_records()
    pool = [f"pool item {i}".encode() for i in range(40)]
    paths = []
    for i, data in enumerate(pool):
        paths.append(tmp_path / f"item-{i}")
        paths[-1].write_bytes(data)
        repo.put(data)  # stored once, then left to age into garbage
    impl.age(GRACE.total_seconds() + 2.5)  # before any collection runs

    told: dict[Digest, float] = {}
    lock = threading.Lock()

    def write_once(seed: int, rng: random.Random) -> None:
        # Half put bytes one at a time; the others put a few files at once with
        # put_files, which writes what a listing shows absent without looking again.
        if seed % 2:
            stored = [f.digest for f in repo.put_files(rng.sample(paths, 3))]
        else:
            stored = [repo.put(pool[rng.randrange(len(pool))])]
        with lock:
            for digest in stored:
                told[digest] = time.time()

    def protected(started: float) -> list[Digest]:
        with lock:
            return [d for d, told_at in told.items() if told_at > started - PROTECTED]

    race = run_race(
        repo,
        write_once,
        seconds=SECONDS,
        rounds=ROUNDS,
        collect_once=lambda: repo.collect(ExactLiveset([])).collected,
        protected=protected,
    )
    assert not race.errors, race.errors
    assert race.violations == []
    assert race.rounds >= ROUNDS, f"{race.rounds} collections ({race.collected} objects collected)"
    assert race.collected > 0  # the collections did delete garbage while writers ran
    records = [key for key in impl.stored_keys() if key.startswith(impl.store_key("touches/"))]
    assert bool(records) == touch_records  # and the writers kept it the way asked
