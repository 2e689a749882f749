"""in_order: reads overlap, at most ``ahead`` at a time, and come back in order."""

from __future__ import annotations

import random
import threading
import time

import pytest

from s3repo_core._inorder import in_order


def test_results_come_in_order_with_at_most_ahead_reads_in_flight() -> None:
    lock = threading.Lock()
    running, most = 0, 0

    def read(item: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(random.random() / 200)  # finish out of order
        with lock:
            running -= 1
        return item * 10

    assert list(in_order(read, range(40), 3, "test-in-order")) == [i * 10 for i in range(40)]
    assert 1 < most <= 3


def test_an_error_comes_where_its_result_would_and_later_reads_are_not_all_made() -> None:
    made: list[int] = []

    def read(item: int) -> int:
        made.append(item)
        if item == 5:
            raise ValueError("five")
        return item

    got: list[int] = []
    with pytest.raises(ValueError, match="five"):
        for value in in_order(read, range(1000), 2, "test-in-order"):
            got.append(value)
    assert got == [0, 1, 2, 3, 4]
    assert len(made) < 20  # the items after the error were not all read
