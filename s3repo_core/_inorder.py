"""Reads that overlap but come back in the order asked for, a bounded number at a time.

Manifests are read one after another by their callers (merged, or listed with their
footers), but each read is mostly waiting on S3: a few in flight hide the round trips,
and a bound keeps a long list from holding every result at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["in_order"]

T = TypeVar("T")
R = TypeVar("R")


def in_order(read: Callable[[T], R], items: Iterable[T], ahead: int, name: str) -> Iterator[R]:
    """``read`` of each item, in the items' order, with up to ``ahead`` reads in flight
    on threads named ``name``; the first error is raised where its result would be, and
    the reads not yet started are cancelled."""
    with ThreadPoolExecutor(ahead, thread_name_prefix=name) as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(read, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
