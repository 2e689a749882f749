"""Storing many files at once: hash them all, learn what is stored from a listing, and
keep what is stored with one touch record.

Re-putting content that is stored costs the listing's pages and a few requests, not
requests per file: the listing tells each stored object's size and age, so no file
needs a HEAD, and objects old enough to need a refresh are kept by one touch record
(``_touches``) where the repository allows them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from ._digest import File
from ._errors import IntegrityError
from ._keeper import Keeper, Kept
from ._names import Layout
from ._store import Stat, Store
from ._streams import HashingReader
from ._survey import survey

__all__ = ["Batch", "file_of", "hash_file"]

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


class Batch:
    """One ``put_files`` of a repository: ``write_new`` writes content that is not
    stored (verified as it is read), ``keeper`` keeps what is."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        keeper: Keeper,
        *,
        write_new: WriteNew,
        concurrency: int,
        page_size: int = 1000,
    ) -> None:
        self.store = store
        self.layout = layout
        self.keeper = keeper
        self.write_new = write_new
        self.concurrency = concurrency
        self.page_size = page_size

    def run(
        self,
        given: Iterable[str | os.PathLike[str]],
        on_hashed: Progress | None = None,
        on_stored: Progress | None = None,
        on_written: Progress | None = None,
    ) -> list[File]:
        paths = [Path(path) for path in given]

        def hash_one(path: Path) -> File:
            file = hash_file(path)
            if on_hashed is not None:
                on_hashed(path, file)
            return file

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-put") as pool:
            files = list(pool.map(hash_one, paths))
            paths_of: dict[File, list[Path]] = {}  # each content once, whatever its copies
            for path, file in zip(paths, files, strict=True):
                paths_of.setdefault(file, []).append(path)
            file_at = {self.layout.object_key(file.digest): file for file in paths_of}
            seen = survey(self.store, self.layout, sorted(file_at), self.page_size, pool.map)
            for key, sighting in seen.items():
                if sighting is not None and sighting.stat.size != file_at[key].size:
                    raise _size_clash(self.store, file_at[key], sighting.stat)
            stored = [sighting for sighting in seen.values() if sighting is not None]
            kept = self.keeper.keep_all(stored)
            born = kept.born

            def report(key: str) -> None:
                if on_stored is not None:
                    for path in paths_of[file_at[key]]:
                        on_stored(path, file_at[key])

            def write(key: str) -> str:
                file = file_at[key]
                began = time.monotonic()
                with paths_of[file][0].open("rb") as body:
                    self.write_new(file, body)
                born[key] = began
                if on_written is not None:
                    on_written(paths_of[file][0], file)
                return key

            for key in born:
                report(key)
            absent = [key for key, sighting in seen.items() if sighting is None]
            for key in pool.map(write, absent + kept.vanished):
                report(key)
            self._freshen_early(born, file_at, pool, write)
        return files

    def _freshen_early(
        self,
        born: dict[str, float],
        file_at: dict[str, File],
        pool: ThreadPoolExecutor,
        write: Callable[[str], str],
    ) -> None:
        """The guarantee counts from the return: what this call stored or confirmed
        more than ``refresh_window`` before now is made fresh again (one touch record
        where allowed; ``Keeper.freshen_early``), and what vanished meanwhile is
        written again, until nothing is early."""
        kept = Kept(born=born)  # ``write`` records each key it writes in ``born``
        sizes = {key: file.size for key, file in file_at.items()}
        while True:
            self.keeper.freshen_early(kept, sizes)
            if not kept.vanished:
                return
            vanished, kept.vanished = kept.vanished, []
            list(pool.map(write, vanished))


def _size_clash(store: Store, file: File, found: Stat) -> IntegrityError:
    return IntegrityError(
        f"{file.digest} is stored in {store.where(found.key)} with {found.size} bytes, "
        f"not {file.size}",
        key=found.key,
        digest=file.digest,
    )
