"""Collections run back to back while writer threads store: the frame of the race tests.

Each race test supplies its writers, one collection, and after each collection the
digests it must find still stored; :func:`run_race` runs them for a while, then stops
and joins the writers whatever happened.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from s3repo_core import Digest, NotExistError, Repository


@dataclass
class Race:
    """What the collections did, every digest found missing that must not be, and
    what the writers raised."""

    rounds: int = 0
    collected: int = 0
    violations: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


def run_race(
    repo: Repository,
    write_once: Callable[[int, random.Random], None],
    *,
    seconds: float,
    rounds: int,
    collect_once: Callable[[], int],
    protected: Callable[[float], Iterable[Digest]],
    writers: int = 4,
) -> Race:
    """Start ``writers`` threads, each calling ``write_once(seed, rng)`` (its number and
    its own seeded Random) again and again; until ``seconds`` have passed and
    ``rounds`` collections have run (on a busy machine that takes longer; at most four
    times ``seconds``), or a writer raises, run ``collect_once`` (how many it
    collected), then stat each of ``protected(started)`` (``started``: the round's
    ``time.time()`` at its start). Then stop and join the writers."""
    race = Race()
    stop = threading.Event()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                write_once(seed, rng)
        except BaseException as exc:
            race.errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(writers)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    stop_at, give_up_at = began + seconds, began + 4 * seconds
    try:
        while not race.errors and time.monotonic() < give_up_at:
            if time.monotonic() >= stop_at and race.rounds >= rounds:
                break
            started = time.time()
            race.collected += collect_once()
            race.rounds += 1
            for digest in protected(started):
                try:
                    repo.stat(digest)
                except NotExistError:
                    race.violations.append(f"round {race.rounds}: {digest} vanished")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return race
