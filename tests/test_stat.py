"""stat_many: many lookups at once, every missing digest named, built on ``stat`` alone."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from s3repo_core import (
    Digest,
    File,
    InvalidArgumentError,
    NotExistError,
    S3Repository,
    UnavailableError,
    stat_many,
)


class Watched:
    """A repository that counts the lookups it is asked for and how many overlap."""

    def __init__(self, repo: Any, seconds: float = 0.0, failing: Digest | None = None) -> None:
        self.repo = repo
        self.seconds = seconds
        self.failing = failing
        self.calls: list[Digest] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def stat(self, digest: Digest) -> File:
        with self._lock:
            self.calls.append(digest)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.seconds)
            if digest == self.failing:
                raise UnavailableError("the store went away")
            return self.repo.stat(digest)  # type: ignore[no-any-return]
        finally:
            with self._lock:
                self.in_flight -= 1

    def __str__(self) -> str:
        return str(self.repo)


def test_files_come_back_in_the_order_given_and_a_repeat_is_looked_up_once(
    repo: S3Repository,
) -> None:
    a, b = repo.put(b"a" * 3), repo.put(b"b" * 7)
    watched = Watched(repo)

    files = stat_many(watched, [b, str(a), b])

    assert files == [File(b, 7), File(a, 3), File(b, 7)]
    assert sorted(watched.calls) == sorted([a, b])
    assert stat_many(repo, []) == []


def test_every_missing_digest_is_named_not_just_the_first(repo: S3Repository) -> None:
    present = repo.put(b"present")
    gone = [Digest.of(f"gone {n}".encode()) for n in range(12)]

    with pytest.raises(NotExistError) as caught:
        stat_many(repo, [gone[0], present, gone[1]])
    assert str(caught.value) == f"2 of 3 digests are not in {repo.url}: {gone[0]}, {gone[1]}"

    with pytest.raises(NotExistError) as caught:
        stat_many(repo, [present, *gone])
    message = str(caught.value)
    assert message.startswith(f"12 of 13 digests are not in {repo.url}: {gone[0]}, ")
    assert message.endswith(f"{gone[9]} ...")  # ten named, in the order given
    assert str(gone[10]) not in message


def test_lookups_overlap_up_to_the_concurrency_and_no_further(repo: S3Repository) -> None:
    digests = [repo.put(f"object {n}".encode()) for n in range(12)]
    watched = Watched(repo, seconds=0.05)

    files = stat_many(watched, digests, concurrency=4)

    assert [f.digest for f in files] == digests
    assert watched.most_in_flight == 4
    one_at_a_time = Watched(repo, seconds=0.01)
    stat_many(one_at_a_time, digests, concurrency=1)
    assert one_at_a_time.most_in_flight == 1


def test_a_malformed_digest_is_refused_before_any_lookup(repo: S3Repository) -> None:
    watched = Watched(repo)
    with pytest.raises(InvalidArgumentError, match="invalid digest 'sha256:XYZ'"):
        stat_many(watched, [str(Digest.of(b"fine")), "sha256:XYZ"])
    with pytest.raises(InvalidArgumentError, match="a Digest or a 'sha256:<hex>' string"):
        stat_many(watched, [b"\x00" * 32])  # type: ignore[list-item]
    assert watched.calls == []


def test_another_error_stops_the_lookups_not_yet_started(repo: S3Repository) -> None:
    digests = [repo.put(f"object {n}".encode()) for n in range(10)]
    watched = Watched(repo, failing=digests[1])

    with pytest.raises(UnavailableError, match="the store went away"):
        stat_many(watched, digests, concurrency=1)

    assert watched.calls == digests[:2]


@pytest.mark.parametrize(
    ("digests", "concurrency", "message"),
    [
        ([], 0, "concurrency must be an integer >= 1"),
        ([], True, "concurrency must be an integer >= 1"),
        (str(Digest.of(b"x")), 1, "a list of digests, not one string"),
    ],
)
def test_bad_arguments_are_invalid_arguments(
    repo: S3Repository, digests: Any, concurrency: Any, message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        stat_many(repo, digests, concurrency=concurrency)
