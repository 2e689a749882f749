"""Storing many files at once: hash them all, then learn what is stored from a listing.

A HEAD per file costs a request per file even when everything is stored; a LIST of the
batch's key range costs a request per thousand keys. Digests are uniform, so the key
range the first pages cover tells how many pages the rest would take, and the listing
stops where HEADs become cheaper.
"""

from __future__ import annotations

import bisect
import math
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from ._digest import File
from ._listing import key_before
from ._names import Layout
from ._store import Store
from ._streams import HashingReader

__all__ = ["Batch", "file_of", "hash_file"]

#: Stores ``body`` as ``file`` (a HEAD first, then as ``put_file`` does); the flag
#: says the batch itself confirmed ``file`` moments ago (see ``Keeper.keep``'s ``ours``).
PutFile = Callable[[File, BinaryIO, bool], None]
WriteNew = Callable[[File, BinaryIO], None]
Progress = Callable[[Path, File], None]


def file_of(stream: BinaryIO) -> File:
    """The File of the rest of ``stream``: one pass, nothing kept."""
    reader = HashingReader(stream)
    reader.drain()
    return File(reader.digest, reader.size)


def hash_file(path: Path) -> File:
    """The File of what ``path`` holds now."""
    with path.open("rb") as body:
        return file_of(body)


def _position(key: str) -> int | None:
    """Where an object key's digest lies in the hash space (its first 64 bits).

    None for a key that does not end in a digest (a stray key under ``objects/``).
    """
    try:
        return int(key[-64:-48], 16)
    except ValueError:
        return None


class Batch:
    """One ``put_files`` of a repository: ``put_file`` for content that may be stored,
    ``write_new`` for content a listing showed absent (no HEAD needed)."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        *,
        put_file: PutFile,
        write_new: WriteNew,
        concurrency: int,
        refresh_window: timedelta,
        grace: timedelta,
        page_size: int = 1000,
    ) -> None:
        self.store = store
        self.layout = layout
        self.put_file = put_file
        self.write_new = write_new
        self.concurrency = concurrency
        self.refresh_window = refresh_window
        self.grace = grace
        self.page_size = page_size

    def run(
        self,
        given: Iterable[str | os.PathLike[str]],
        on_hashed: Progress | None = None,
        on_stored: Progress | None = None,
    ) -> list[File]:
        paths = [Path(path) for path in given]

        def hash_one(path: Path) -> File:
            file = hash_file(path)
            if on_hashed is not None:
                on_hashed(path, file)
            return file

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-hash") as pool:
            files = list(pool.map(hash_one, paths))
        paths_of: dict[File, list[Path]] = {}  # each content once, whatever its copies
        for path, file in zip(paths, files, strict=True):
            paths_of.setdefault(file, []).append(path)
        absent = self.absent_by_listing(
            sorted(self.layout.object_key(file.digest) for file in paths_of)
        )

        # The guarantee counts from the return: content confirmed early in a long batch
        # is looked at again (and refreshed if need be) until every confirmation is
        # recent. A second look never waits out settle (the batch confirmed that content
        # itself), so each pass is shorter than the one before: a HEAD a file.
        stored_at: dict[File, float] = {}

        def store(file: File, first: bool) -> None:
            same = paths_of[file]
            with same[0].open("rb") as body:
                if first and self.layout.object_key(file.digest) in absent:
                    self.write_new(file, body)
                else:
                    # Our own confirmation vouches for the object only while it is far
                    # younger than any threshold a collection may use.
                    recent = time.monotonic() - stored_at.get(file, -math.inf) < trusted
                    self.put_file(file, body, not first and recent)
            stored_at[file] = time.monotonic()
            if first and on_stored is not None:
                for path in same:
                    on_stored(path, file)

        stale = self.refresh_window.total_seconds() / 2
        trusted = self.grace.total_seconds() / 2
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-put") as pool:
            list(pool.map(lambda file: store(file, True), paths_of))
            for _ in range(8):
                now = time.monotonic()
                todo = [file for file, at in stored_at.items() if now - at > stale]
                if not todo:
                    break
                list(pool.map(lambda file: store(file, False), todo))
        return files

    def absent_by_listing(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` (sorted object keys) a LIST shows absent, where it pays.

        Listing pages through the repository's objects from the first key on. Once the
        key range the pages so far covered says the rest would take no fewer pages than
        there are keys left, those keys are left for a HEAD each (and the answer for
        them is that none is known absent).
        """
        if len(keys) < 2:
            return set()
        absent: set[str] = set()
        start = _position(keys[0]) or 0
        pending = keys
        listing = self.store.list_pages(
            self.layout.objects_shard(""), key_before(keys[0]), self.page_size
        )
        for pages, page in enumerate(listing, 1):
            listed = {item.key for item in page.items}
            if not page.truncated:
                absent.update(key for key in pending if key not in listed)
                break
            if not page.items:
                break
            last = page.items[-1].key
            resolved = bisect.bisect_right(pending, last)
            absent.update(key for key in pending[:resolved] if key not in listed)
            pending = pending[resolved:]
            reached = _position(last)
            if not pending or reached is None:  # no estimate past a stray key: HEADs
                break
            pages_left = ((_position(pending[-1]) or 0) - reached) * pages / max(reached - start, 1)
            if pages_left >= len(pending):
                break
        return absent
