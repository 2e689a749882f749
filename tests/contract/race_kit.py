"""Collections run back to back while writer threads store: the frame of the race tests.

Each race test supplies its writers, one collection, and after each collection the
digests it must find still stored; :func:`run_race` runs them for a while, then stops
and joins the writers whatever happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from s3repo_core import Digest, NotExistError, Repository


@dataclass
class Race:
    """What the collections did, and every digest found missing that must not be."""

    rounds: int = 0
    collected: int = 0
    violations: list[str] = field(default_factory=list)


def run_race(
    repo: Repository,
    writers: list[threading.Thread],
    stop: threading.Event,
    errors: list[BaseException],
    *,
    seconds: float,
    rounds: int,
    collect_once: Callable[[], int],
    protected: Callable[[float], Iterable[Digest]],
) -> Race:
    """Start ``writers``; until ``seconds`` have passed and ``rounds`` collections have
    run (on a busy machine that takes longer; at most four times ``seconds``), or a
    writer fails, run ``collect_once`` (how many it collected), then stat each of
    ``protected(started)`` (``started``: the round's ``time.time()`` at its start).
    Then set ``stop`` and join the writers."""
    race = Race()
    for thread in writers:
        thread.start()
    began = time.monotonic()
    stop_at, give_up_at = began + seconds, began + 4 * seconds
    try:
        while not errors and time.monotonic() < give_up_at:
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
        for thread in writers:
            thread.join()
    return race
