"""put_files: many files at once, with existence learned from a LIST where that pays.

Run on each server. The requests are counted on the repository's client, because the
point of put_files is to send fewer of them than a HEAD and a PUT per new file.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest

from s3repo_core import Digest, File, IntegrityError, S3Repository
from s3repo_core import _batch as batch_module
from s3repo_core._survey import survey

from requests_log import RequestLog

MiB = 1024 * 1024


def write_files(directory: Path, contents: list[bytes], tag: str = "f") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, data in enumerate(contents):
        path = directory / f"{tag}-{i:04d}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def small(n: int, tag: str) -> list[bytes]:
    return [f"{tag} {i}".encode() * (1 + i % 7) for i in range(n)]


def object_keys(client: Any, bucket: str, repo: S3Repository) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=repo.layout.root)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_each_file_is_stored_and_its_file_returned_in_order(
    repo: S3Repository, tmp_path: Path
) -> None:
    big = hashlib.sha256(b"seed").digest() * (11 * MiB // 32)  # three 5 MiB parts
    contents = [*small(5, "x"), b"", big, b"x 1" * 2, b"stored before"]
    repo.put(b"stored before")
    paths = write_files(tmp_path, contents)
    seen: dict[str, list[tuple[Path, File]]] = {"hashed": [], "stored": []}
    lock = threading.Lock()

    def record(phase: str) -> Any:
        def called(path: Path, file: File) -> None:
            with lock:
                seen[phase].append((path, file))

        return called

    files = repo.put_files(paths, on_hashed=record("hashed"), on_stored=record("stored"))
    assert files == [File(Digest.of(data), len(data)) for data in contents]
    for phase in ("hashed", "stored"):  # every path, once
        assert sorted(seen[phase]) == sorted(zip(paths, files, strict=True)), phase
    for data, file in zip(contents, files, strict=True):
        with repo.get(file.digest) as stream:
            assert stream.read() == data


def test_new_files_cost_one_list_and_a_put_each(
    repo: S3Repository, client: Any, tmp_path: Path
) -> None:
    paths = write_files(tmp_path, small(20, "new"))
    log = RequestLog(client)
    repo.put_files(paths)
    assert log.calls["HeadObject"] == 0
    assert log.calls["ListObjectsV2"] == 1
    assert log.calls["PutObject"] == 20


def test_stored_files_upload_nothing(repo: S3Repository, client: Any, tmp_path: Path) -> None:
    paths = write_files(tmp_path, small(12, "again"))
    first = repo.put_files(paths)
    log = RequestLog(client)
    assert repo.put_files(paths) == first
    assert log.uploaded == 0
    assert set(log.calls) <= {"HeadObject", "ListObjectsV2"}


def populate(client: Any, bucket: str, repo: S3Repository, n: int) -> None:
    for i in range(n):
        data = f"already there {i}".encode()
        client.put_object(Bucket=bucket, Key=repo.layout.object_key(Digest.of(data)), Body=data)


def test_listing_goes_on_while_it_is_cheaper_than_a_head_each(
    repo: S3Repository, client: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(S3Repository, "list_page_size", 20)
    populate(client, bucket, repo, 60)  # three or four pages of 20
    paths = write_files(tmp_path, small(40, "many"))
    log = RequestLog(client)
    files = repo.put_files(paths)
    assert log.calls["HeadObject"] == 0
    assert 2 <= log.calls["ListObjectsV2"] <= 5
    assert log.calls["PutObject"] == 40
    assert all(repo.stat(file.digest) == file for file in files)


def test_listing_stops_where_a_head_each_is_cheaper(
    repo: S3Repository, client: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(S3Repository, "list_page_size", 5)
    populate(client, bucket, repo, 100)  # twenty pages of 5
    paths = write_files(tmp_path, small(4, "few"))
    log = RequestLog(client)
    files = repo.put_files(paths)
    # Never more requests than a HEAD each would take, and one LIST at most to learn it.
    assert log.calls["ListObjectsV2"] + log.calls["HeadObject"] <= len(paths) + 1
    assert log.calls["HeadObject"] >= 1
    assert all(repo.stat(file.digest) == file for file in files)


def test_a_stray_key_in_the_listing_ends_it_without_harm(
    repo: S3Repository, client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(S3Repository, "list_page_size", 1)
    digests = [Digest.of(f"stray {i}".encode()) for i in range(64)]
    low = next(d for d in digests if str(d)[7] < "8")
    high, beyond = [d for d in digests if str(d)[7] > "8"][:2]
    stray = repo.layout.objects_shard("8-not-a-digest")
    for key in (stray, repo.layout.object_key(beyond)):  # the listing goes on past stray
        client.put_object(Bucket=bucket, Key=key, Body=b"")
    keys = sorted(repo.layout.object_key(d) for d in (low, high))
    # The first page holds only the stray key: it shows ``low`` absent, and says nothing
    # of the keys past it, which are left to a HEAD each.
    log = RequestLog(client)
    assert survey(repo.store, repo.layout, keys, 1) == dict.fromkeys(keys)
    assert log.calls == {"ListObjectsV2": 1, "HeadObject": 1}


def test_a_file_changed_after_hashing_is_refused_and_nothing_is_stored(
    repo: S3Repository, client: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_files(tmp_path, [b"original", b"other"])
    hash_file = batch_module.hash_file

    def hash_then_change(path: Path) -> File:
        file = hash_file(path)
        if path == paths[0]:
            path.write_bytes(b"changed!")  # same length, other bytes
        return file

    monkeypatch.setattr(batch_module, "hash_file", hash_then_change)
    with pytest.raises(IntegrityError, match="hashes to"):
        repo.put_files(paths)
    with pytest.raises(Exception, match="not in"):
        repo.stat(Digest.of(b"original"))
    assert repo.layout.object_key(Digest.of(b"changed!")) not in object_keys(client, bucket, repo)


def test_a_missing_file_fails_before_anything_is_stored(
    repo: S3Repository, client: Any, bucket: str, tmp_path: Path
) -> None:
    paths = write_files(tmp_path, small(3, "gone"))
    with pytest.raises(FileNotFoundError):
        repo.put_files([*paths, tmp_path / "missing"])
    assert object_keys(client, bucket, repo) == []
