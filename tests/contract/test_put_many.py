"""put_files: many files at once; their Files in order, each content stored once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from contract_kit import Impl, MiB, payload

from s3repo_core import Digest, File, IntegrityError, NotExistError
from s3repo_core import _batch as batch_module


def write_files(directory: Path, contents: list[bytes], tag: str = "f") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, data in enumerate(contents):
        paths.append(directory / f"{tag}-{i:04d}")
        paths[-1].write_bytes(data)
    return paths


def small(n: int, tag: str) -> list[bytes]:
    return [f"{tag} {i}".encode() * (1 + i % 7) for i in range(n)]


def test_each_file_is_stored_and_its_file_returned_in_order(impl: Impl, tmp_path: Path) -> None:
    # Empty, large, stored before, and the same content at three paths.
    contents = [*small(5, "x"), b"", payload(3 * MiB, seed=30), b"x 1" * 2, b"stored before"]
    contents.append(contents[1])
    impl.repo.put(b"stored before")
    paths = write_files(tmp_path, contents)
    seen: dict[str, list[tuple[Path, File]]] = {"hashed": [], "stored": [], "written": []}
    lock = threading.Lock()

    def recorder(phase: str) -> Callable[[Path, File], None]:
        def record(path: Path, file: File) -> None:
            with lock:
                seen[phase].append((path, file))

        return record

    files = impl.repo.put_files(
        paths,
        on_hashed=recorder("hashed"),
        on_stored=recorder("stored"),
        on_written=recorder("written"),
    )
    assert files == [File(Digest.of(data), len(data)) for data in contents]
    for phase in ("hashed", "stored"):  # every path once, duplicates included
        assert sorted(seen[phase]) == sorted(zip(paths, files, strict=True)), phase
    # Each content written once, at the first path that holds it; not what was stored.
    first_paths = {file: path for path, file in reversed(list(zip(paths, files, strict=True)))}
    new_files = [file for file in first_paths if file != File(Digest.of(b"stored before"), 13)]
    assert sorted(seen["written"]) == sorted((first_paths[file], file) for file in new_files)
    for data, file in zip(contents, files, strict=True):
        with impl.repo.get(file.digest) as stream:
            assert stream.read() == data
    assert impl.object_keys() == sorted({impl.key(file.digest) for file in files})
    assert impl.stored_keys() == impl.object_keys()


def test_put_files_takes_strings_and_an_empty_list(impl: Impl, tmp_path: Path) -> None:
    paths = write_files(tmp_path, small(3, "str"))
    assert impl.repo.put_files([str(path) for path in paths]) == impl.repo.put_files(iter(paths))
    assert impl.repo.put_files([]) == []


def test_stored_files_are_not_written_again(impl: Impl, tmp_path: Path) -> None:
    paths = write_files(tmp_path, small(12, "again"))
    first = impl.repo.put_files(paths)
    with impl.count_writes() as written:
        assert impl.repo.put_files(paths) == first
        assert impl.make().put_files(paths) == first
    assert written.bytes == 0


def test_a_file_changed_after_hashing_is_refused_and_nothing_is_stored(
    impl: Impl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_files(tmp_path, [b"original", b"other"])
    hash_file = batch_module.hash_file

    def hash_then_change(path: Path) -> File:
        file = hash_file(path)
        if path == paths[0]:
            path.write_bytes(b"changed!")  # same length, other bytes
        return file

    monkeypatch.setattr(batch_module, "hash_file", hash_then_change)
    with pytest.raises(IntegrityError, match="hashes to") as caught:
        impl.repo.put_files(paths)
    assert caught.value.digest == Digest.of(b"original")
    with pytest.raises(NotExistError):
        impl.repo.stat(Digest.of(b"original"))
    assert impl.key(Digest.of(b"changed!")) not in impl.stored_keys()


def test_a_missing_file_fails_before_anything_is_stored(impl: Impl, tmp_path: Path) -> None:
    paths = write_files(tmp_path, small(3, "gone"))
    with pytest.raises(FileNotFoundError):
        impl.repo.put_files([*paths, tmp_path / "missing"])
    assert impl.stored_keys() == []
