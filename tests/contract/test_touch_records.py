"""Touch records: the interleavings that would lose an object, each pinned down.

Writers keep old content with one touch record per batch (``s3repo_core._touches``
states the rules). Each test here is one way a careless version of that scheme loses
an object: a record keyed earlier than one already read but landing later, a record
that lands too late to be relied on, a record written between a delete's decision and
its retry, and a batch that lasts longer than ``refresh_window``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from contract_kit import AGE, Impl

from s3repo_core import Digest, NotExistError, UnavailableError
from s3repo_core import _keeper as keeper_module
from s3repo_core._collect import collect
from s3repo_core._touches import LANDING_LIMIT, TouchLog, decode_record, write_record
from s3repo_core.liveset import ExactLiveset


def record_keys(repo: Any) -> list[str]:
    return [item.key for page in repo.store.list_pages(repo.layout.touches) for item in page.items]


def effective_age(repo: Any, digest: Digest) -> float:
    """Seconds since ``digest``'s object, or a record naming it, was last modified."""
    store, layout = repo.store, repo.layout
    times = [store.head(layout.object_key(digest)).modified]
    for page in store.list_pages(layout.touches):
        for item in page.items:
            if digest.hex in decode_record(store.read(item.key)):
                times.append(item.modified)
    return (store.server_now(layout.collections) - max(times)).total_seconds()


def test_a_record_keyed_before_one_already_read_but_landing_later_is_read(impl: Impl) -> None:
    store, layout = impl.repo.store, impl.repo.layout  # type: ignore[attr-defined]
    now = store.server_now(layout.collections)
    log = TouchLog(store, layout, now - timedelta(hours=1))
    first, second = Digest.of(b"lands first"), Digest.of(b"keyed first, lands second")
    assert write_record(store, layout, [first], now)
    log.read_within(0)
    assert log.touched(layout.object_key(first))
    # This writer chose its key 30 s before the first record's, but its PUT lands only
    # now: below where the last reading listed from, unless readings look back.
    assert write_record(store, layout, [second], now - timedelta(seconds=30))
    log.read_within(0)
    assert log.touched(layout.object_key(second))


def test_a_record_that_lands_too_late_is_not_relied_on(
    impl: Impl, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = impl.repo
    store, layout = repo.store, repo.layout  # type: ignore[attr-defined]
    now = store.server_now(layout.collections)
    late = now - LANDING_LIMIT - timedelta(seconds=5)
    assert not write_record(store, layout, [Digest.of(b"x")], late)
    assert record_keys(repo) == []  # and it was taken away again
    # A writer whose record lands too late keeps each object itself instead.
    repo.enable_touch_records()
    digest = repo.put(b"kept the old way")
    impl.age(AGE)
    real = keeper_module._store_now
    monkeypatch.setattr(keeper_module, "_store_now", lambda seen: real(seen) - LANDING_LIMIT * 2)
    repo.put(b"kept the old way")
    assert record_keys(repo) == []
    assert effective_age(repo, digest) < 2  # refreshed in place


def test_a_record_written_before_a_delete_is_retried_keeps_its_objects(impl: Impl) -> None:
    repo = impl.repo
    store, layout = repo.store, repo.layout  # type: ignore[attr-defined]
    repo.enable_touch_records()
    digest = repo.put(b"deleted, refused, retried")  # one key: one batch
    impl.age(AGE)

    def writer_touches(keys: Sequence[str]) -> None:
        found = [layout.digest_of_key(key) for key in keys]
        assert write_record(store, layout, found, store.server_now(layout.collections))

    refusing = RefusesFirstDelete(store, writer_touches)
    report = collect(
        refusing,  # type: ignore[arg-type]
        layout,
        repo.url,
        ExactLiveset([]),
        windows=repo.windows,  # type: ignore[attr-defined]
        concurrency=2,
        raise_on_errors=False,
    )
    # The retry came later than a quarter of settle after the last reading, so the
    # collection read the records again first, and the new one kept the key.
    assert refusing.refused == 1
    assert report.collected == 0
    repo.stat(digest)


def test_a_long_put_files_ends_with_everything_it_kept_fresh(
    impl: Impl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refresh = timedelta(seconds=1)
    repo = impl.make(
        refresh_window=refresh, settle=timedelta(milliseconds=400), grace=timedelta(seconds=4)
    )
    repo.enable_touch_records()
    old, new = tmp_path / "old", tmp_path / "new"
    old.write_bytes(b"stored long before the batch")
    new.write_bytes(b"slow to upload")
    (old_file,) = repo.put_files([old])
    impl.age(AGE)
    write = repo._write_verified  # type: ignore[attr-defined]

    def slow_write(file: Any, body: Any) -> None:
        time.sleep(3.5)  # the batch outlasts refresh_window while it uploads
        write(file, body)

    monkeypatch.setattr(repo, "_write_verified", slow_write)
    repo.put_files([old, new])
    # The record written at the start is 3.5 s old by now: the batch touched again.
    assert effective_age(repo, old_file.digest) <= refresh.total_seconds() + 1


def held_up_after_each_record(monkeypatch: pytest.MonkeyPatch, seconds: list[float]) -> None:
    """The writer stalls (a slow store, a busy machine) just after each touch record
    lands, for the next of ``seconds``; then no more."""
    write = keeper_module.write_record

    def held_up(*args: Any) -> bool:
        landed = write(*args)
        if seconds:
            time.sleep(seconds.pop(0))
        return landed

    monkeypatch.setattr(keeper_module, "write_record", held_up)


def test_a_put_held_up_after_its_record_keeps_again_before_it_returns(
    impl: Impl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guarantee counts from the return, so the time a writer spends after its
    record landed counts against refresh_window too."""
    refresh = timedelta(seconds=1)
    repo = impl.make(
        refresh_window=refresh, settle=timedelta(milliseconds=400), grace=timedelta(seconds=4)
    )
    repo.enable_touch_records()
    digest = repo.put(b"kept by a writer that was held up")
    impl.age(AGE)
    held_up_after_each_record(monkeypatch, [3.0])
    repo.put(b"kept by a writer that was held up")
    assert effective_age(repo, digest) <= refresh.total_seconds() + 1
    assert len(record_keys(repo)) == 2  # the late one, and one written before returning


def test_a_writer_that_can_never_keep_in_time_fails_instead_of_returning(
    impl: Impl, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = impl.make(
        refresh_window=timedelta(milliseconds=300),
        settle=timedelta(milliseconds=400),
        grace=timedelta(seconds=4),
    )
    repo.enable_touch_records()
    repo.put(b"never kept in time")
    impl.age(AGE)
    held_up_after_each_record(monkeypatch, [0.4] * 20)
    with pytest.raises(UnavailableError, match="longer than refresh_window"):
        repo.put(b"never kept in time")


def test_collection_keeps_what_a_record_touched_then_removes_the_record(impl: Impl) -> None:
    repo = impl.repo
    repo.enable_touch_records()
    touched, untouched = repo.put(b"found again"), repo.put(b"never found again")
    impl.age(AGE)
    repo.put(b"found again")
    assert len(record_keys(repo)) == 1
    report = repo.collect(ExactLiveset([]))
    assert report.collected == 1 and report.kept_recent == 1
    repo.stat(touched)
    with pytest.raises(NotExistError):
        repo.stat(untouched)
    impl.age(AGE)
    report = repo.collect(ExactLiveset([]))
    assert report.collected == 1 and report.touch_records_removed == 1
    assert record_keys(repo) == []


class RefusesFirstDelete:
    """A store whose first DeleteObjects is refused for every key, just after a writer
    (``on_first``) touched them: the collection must retry, and read records first."""

    def __init__(self, store: Any, on_first: Callable[[Sequence[str]], None]) -> None:
        self._store = store
        self._on_first = on_first
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def delete_many(self, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        if self.refused:
            return self._store.delete_many(keys)  # type: ignore[no-any-return]
        self.refused += 1
        self._on_first(keys)
        return {key: ("InternalError", "refused once by the test") for key in keys}
