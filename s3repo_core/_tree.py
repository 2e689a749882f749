"""Tree objects: a directory stored as its files plus one object that lists them.

A tree is stored like any other object, by the digest of its bytes, and its bytes
are canonical, so that equal directories give equal trees and one digest. The
encoding (version 1) is UTF-8 JSON lines, each ending in ``\\n``::

    {"s3repo":"tree","version":1}
    {"digest":"sha256:<hex>","executable":false,"path":"data/a.csv","size":12}
    {"digest":"sha256:<hex>","executable":true,"path":"run.sh","size":40}

The first line says what the object is. Then one line per regular file, sorted by
``path`` (code point order, which is UTF-8 byte order), each a JSON object with
exactly these keys in this order (sorted), no spaces, non-ASCII characters as they
are (not ``\\u`` escapes). ``path`` is relative and POSIX: components joined by
``/``, none empty, ``.`` or ``..``, no NUL; no path is also the parent directory of
another. ``executable`` is the owner's execute bit (as git records it). Only files
are listed: empty directories are not kept, and a directory that holds a symlink or
any other kind of file is refused rather than stored in part.

Decoding is strict: the bytes must be exactly what encoding the decoded tree gives,
so a tree has one encoding and a digest names one listing.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._digest import Digest, File
from ._errors import InvalidArgumentError
from ._repository import Repository

__all__ = ["TREE_HEADER", "Tree", "TreeEntry", "scan_directory"]

#: The first line of every tree object (version 1), without its newline.
TREE_HEADER = b'{"s3repo":"tree","version":1}'
_ENTRY_KEYS = ["digest", "executable", "path", "size"]


def check_tree_path(path: str) -> str:
    """``path`` if it is a safe relative POSIX path; InvalidArgumentError otherwise.

    A path that could leave the directory it is written under (``..``, absolute) is
    refused, so materialising a tree never writes outside its destination.
    """
    if not isinstance(path, str) or not path:
        raise InvalidArgumentError(f"a tree path is a non-empty string, got {path!r:.100}")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"a tree path must be valid UTF-8: {path!r:.100}") from None
    if "\0" in path or any(part in ("", ".", "..") for part in path.split("/")):
        raise InvalidArgumentError(
            f"invalid tree path {path!r:.100}: components joined by '/', none empty, "
            "'.' or '..', and no NUL"
        )
    return path


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One file of a tree: its relative POSIX path, its object, its execute bit."""

    path: str
    file: File
    executable: bool = False

    def __post_init__(self) -> None:
        check_tree_path(self.path)
        if not isinstance(self.file, File):
            raise InvalidArgumentError(f"TreeEntry.file is a File, got {type(self.file).__name__}")
        if not isinstance(self.executable, bool):
            raise InvalidArgumentError("TreeEntry.executable is a bool")

    def line(self) -> bytes:
        """This entry's line of the encoding, without its newline."""
        fields = {
            "digest": str(self.file.digest),
            "executable": self.executable,
            "path": self.path,
            "size": self.file.size,
        }
        return _canonical(fields)


def _canonical(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Tree:
    """A directory's listing: entries sorted by path, each path unique, none a parent of
    another. Build one with :meth:`of` (any order) or :meth:`decode` (stored bytes)."""

    entries: tuple[TreeEntry, ...]

    def __post_init__(self) -> None:
        files: set[str] = set()
        previous: str | None = None
        for entry in self.entries:
            if not isinstance(entry, TreeEntry):
                raise InvalidArgumentError(f"a tree holds TreeEntry, got {type(entry).__name__}")
            if previous is not None and entry.path <= previous:
                raise InvalidArgumentError(
                    f"tree entries must be sorted by path and unique: {entry.path!r:.100} "
                    f"after {previous!r:.100}"
                )
            previous = entry.path
            files.add(entry.path)
        for path in files:
            parts = path.split("/")
            for depth in range(1, len(parts)):
                parent = "/".join(parts[:depth])
                if parent in files:
                    raise InvalidArgumentError(
                        f"{parent!r:.100} is both a file and the directory of {path!r:.100}"
                    )

    @classmethod
    def of(cls, entries: Sequence[TreeEntry]) -> Tree:
        """The tree of these entries, in any order."""
        return cls(tuple(sorted(entries, key=lambda e: e.path)))

    @property
    def size(self) -> int:
        """The bytes of all its files together (not of the tree object)."""
        return sum(entry.file.size for entry in self.entries)

    def files(self) -> list[File]:
        """Every distinct object the tree names, sorted by digest."""
        return sorted({entry.file for entry in self.entries}, key=lambda f: f.digest)

    def encode(self) -> bytes:
        """The canonical bytes (see the module docstring): equal trees, equal bytes."""
        return b"".join(line + b"\n" for line in (TREE_HEADER, *(e.line() for e in self.entries)))

    @classmethod
    def decode(cls, data: bytes) -> Tree:
        """The tree these bytes encode; InvalidArgumentError unless they are a tree object
        in its one canonical encoding."""
        lines = data.split(b"\n")
        if len(lines) < 2 or lines[0] != TREE_HEADER or lines[-1] != b"":
            raise InvalidArgumentError("not an s3repo tree object (version 1)")
        entries = [_entry_of(number, line) for number, line in enumerate(lines[1:-1], start=2)]
        tree = cls(tuple(entries))
        if tree.encode() != data:
            raise InvalidArgumentError("a tree object that is not in its canonical encoding")
        return tree


def _entry_of(number: int, line: bytes) -> TreeEntry:
    try:
        fields = json.loads(line)
    except ValueError:
        raise InvalidArgumentError(f"tree line {number} is not JSON") from None
    if not isinstance(fields, dict) or sorted(fields) != _ENTRY_KEYS:
        raise InvalidArgumentError(f"tree line {number} must have exactly {_ENTRY_KEYS}")
    digest, size = fields["digest"], fields["size"]
    if not isinstance(digest, str) or isinstance(size, bool) or not isinstance(size, int):
        raise InvalidArgumentError(f"tree line {number}: bad digest or size")
    try:
        return TreeEntry(fields["path"], File(Digest.parse(digest), size), fields["executable"])
    except InvalidArgumentError as error:
        raise InvalidArgumentError(f"tree line {number}: {error}") from None


def is_executable(mode: int) -> bool:
    """The execute bit a tree records: the owner's, as git does."""
    return bool(mode & stat.S_IXUSR)


def scan_directory(root: Path) -> list[tuple[str, Path, bool]]:
    """Every regular file under ``root``: (relative POSIX path, path, executable), by path.

    InvalidArgumentError for a symlink or any other kind of file under ``root``: a tree
    holds regular files only, and is refused rather than stored without some of them.
    """
    found: list[tuple[str, Path, bool]] = []
    for directory, names in _walk(root):
        for name in names:
            path = directory / name
            info = path.lstat()
            relative = path.relative_to(root).as_posix()
            if stat.S_ISREG(info.st_mode):
                found.append((check_tree_path(relative), path, is_executable(info.st_mode)))
            elif not stat.S_ISDIR(info.st_mode):
                kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a regular file"
                raise InvalidArgumentError(
                    f"{path} is {kind}: a tree stores regular files and directories only"
                )
    return sorted(found)


def _walk(root: Path) -> Iterator[tuple[Path, list[str]]]:
    def fail(error: OSError) -> None:
        raise error

    for directory, dirs, files in os.walk(root, onerror=fail, followlinks=False):
        # os.walk lists a symlink to a directory among dirs: report it as an entry.
        yield (
            Path(directory),
            files + [d for d in dirs if os.path.islink(os.path.join(directory, d))],
        )


def materialize(repo: Repository, tree: Tree, dest: Path, *, concurrency: int = 8) -> Path:
    """Write ``tree``'s files under ``dest`` (created; it must not exist), each verified.

    Each distinct object is fetched once; a file whose content another has is copied
    locally. Files get the execute bit the tree records (where the read bit is set, as
    git does) and the process's default mode otherwise.
    """
    dest.mkdir(parents=True, exist_ok=False)
    first: dict[Digest, TreeEntry] = {}
    for entry in tree.entries:
        first.setdefault(entry.file.digest, entry)

    def fetch(entry: TreeEntry) -> None:
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        repo.get_file(entry.file.digest, target)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        list(pool.map(fetch, first.values()))
    for entry in tree.entries:
        target = dest / entry.path
        source = first[entry.file.digest]
        if source is not entry:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dest / source.path, target)
        mode = target.stat().st_mode
        if entry.executable:
            target.chmod(mode | ((mode & 0o444) >> 2))
        elif is_executable(mode):
            target.chmod(mode & ~0o111)
    return dest
