"""How many delete requests a shard of a collection sends at once, when S3 says SlowDown.

S3 limits request rates per key prefix, and a collection's shard is a key prefix: a
first collection of a large repository deleting as fast as it lists is sure to be
throttled (503 SlowDown). botocore's adaptive retry mode never sees it, because the
collector refuses botocore's retries of DeleteObjects (an unanswered delete must be
looked at again, never resent blindly). A SlowDown, though, means S3 did not apply the
request: it may be sent again as it was, after backing off.

Each shard has its own limit, additive increase and multiplicative decrease (as TCP):
a SlowDown halves it (down to one request at a time), and each request that goes
through adds ``1 / limit``, so that a full window of successes adds one.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["DeleteRate", "backoff"]

#: The backoff after the first SlowDown, doubling with each one in a row, up to _MOST.
_FIRST = 0.1
_MOST = 5.0


def backoff(in_a_row: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after ``in_a_row`` SlowDowns in a row: exponential, with full
    jitter, so that the shards throttled at once do not all come back at once."""
    ceiling = min(_MOST, _FIRST * 2 ** max(0, in_a_row - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


class DeleteRate:
    """The number of delete requests one shard may have in flight, from 1 to ``most``."""

    def __init__(self, most: int) -> None:
        self.most = max(1, most)
        self.limit = float(self.most)
        #: SlowDowns answered to this shard's requests.
        self.throttled = 0
        #: The lowest the limit went.
        self.lowest = self.most
        self._in_flight = 0
        self._changed = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the shard's places for a request while it is sent."""
        with self._changed:
            while self._in_flight >= int(self.limit):
                self._changed.wait()
            self._in_flight += 1
        try:
            yield
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def went_through(self) -> None:
        with self._changed:
            self.limit = min(float(self.most), self.limit + 1.0 / self.limit)
            self._changed.notify_all()

    def slowed_down(self) -> None:
        with self._changed:
            self.throttled += 1
            self.limit = max(1.0, self.limit / 2)
            self.lowest = min(self.lowest, int(self.limit))
