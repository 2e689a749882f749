"""Re-putting stored content costs a listing, not requests per file, whatever its age.

Counted on the repository's client against moto, whose clock the tests move: content
stored just now (younger than settle), ten minutes ago (fresh enough to leave alone)
and two days ago (older than grace: kept with one touch record). Also what a writer
does while the repository's collectors are not known to read touch records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devkit.localserver import LocalS3
from s3repo_core import Digest, NotSupportedError, S3Repository
from s3repo_core._touches import decode_record
from s3repo_core.liveset import ExactLiveset

from requests_log import RequestLog

FILES = 45
PAGE = 20
MINUTE = 60.0
DAY = 24 * 3600.0


@pytest.fixture
def bucket(moto_bucket: str) -> str:
    return moto_bucket


@pytest.fixture
def repo(bucket: str, monkeypatch: pytest.MonkeyPatch) -> S3Repository:
    monkeypatch.setattr(S3Repository, "list_page_size", PAGE)
    return S3Repository(bucket, "reingest")  # the default windows: 1 h, 24 h, 60 s


@pytest.fixture
def paths(tmp_path: Path) -> list[Path]:
    made = []
    for i in range(FILES):
        made.append(tmp_path / f"file-{i:03d}")
        made[-1].write_bytes(f"artifact {i}\n".encode() * (1 + i % 5))
    return made


def records(repo: S3Repository) -> dict[str, set[str]]:
    """Every touch record of ``repo``: the hex digests each names."""
    found = {}
    for page in repo.store.list_pages(repo.layout.touches):
        for item in page.items:
            found[item.key] = decode_record(repo.store.read(item.key))
    return found


def modified(repo: S3Repository, files: list[Any]) -> dict[Digest, Any]:
    return {
        file.digest: repo.store.head(repo.layout.object_key(file.digest)).modified  # type: ignore[union-attr]
        for file in files
    }


@pytest.mark.parametrize(
    ("age", "extra"),
    [
        (0.0, {"ListObjectsV2": 1}),  # young: is a collection running? (no: no wait)
        (10 * MINUTE, {}),  # fresh: nothing to do
        (2 * DAY, {"GetObject": 1, "PutObject": 1, "ListObjectsV2": 1}),  # marker, record, lease
    ],
    ids=["just-now", "10-minutes", "2-days"],
)
def test_stored_content_costs_the_listing_and_a_constant(
    repo: S3Repository,
    paths: list[Path],
    moto_server: LocalS3,
    age: float,
    extra: dict[str, int],
) -> None:
    repo.enable_touch_records()
    files = repo.put_files(paths)
    before = modified(repo, files)
    moto_server.let_time_pass(age)
    log = RequestLog(repo.store.client)
    again = repo.put_files(paths)
    assert again == files
    pages = -(-FILES // PAGE)
    expected = {"ListObjectsV2": pages + extra.get("ListObjectsV2", 0)}
    expected |= {op: n for op, n in extra.items() if op != "ListObjectsV2"}
    assert dict(log.calls) == expected  # no HEAD, no copy, no upload per file
    assert log.uploaded < 64 * FILES  # at most the record: 32 bytes a digest
    assert modified(repo, files) == before  # nothing was copied onto itself
    if age > DAY:
        (named,) = records(repo).values()
        assert named == {file.digest.hex for file in files}
    else:
        assert records(repo) == {}


def test_a_single_put_of_old_content_costs_a_head_and_a_record(
    repo: S3Repository, moto_server: LocalS3
) -> None:
    repo.enable_touch_records()
    digest = repo.put(b"stored long ago")
    repo.put(b"marker read once")  # the writer learns the marker once and keeps it
    moto_server.let_time_pass(2 * DAY)
    repo.put(b"marker read once")
    log = RequestLog(repo.store.client)
    assert repo.put(b"stored long ago") == digest
    assert dict(log.calls) == {"HeadObject": 1, "PutObject": 1, "ListObjectsV2": 1}
    assert any(digest.hex in named for named in records(repo).values())


def test_without_the_marker_writers_refresh_each_object(
    repo: S3Repository, paths: list[Path], moto_server: LocalS3
) -> None:
    # A collector of an older s3repo ignores touch records: until the repository says
    # its collectors read them, a writer refreshes each old object itself.
    files = repo.put_files(paths[:5])
    before = modified(repo, files)
    moto_server.let_time_pass(2 * DAY)
    log = RequestLog(repo.store.client)
    repo.put_files(paths[:5])
    assert log.calls["CopyObject"] == 5
    assert log.calls["GetObject"] == 1  # the marker, looked for once
    assert records(repo) == {}
    assert all(after > before[d] for d, after in modified(repo, files).items())


def test_an_unreadable_marker_means_no_touch_records(
    repo: S3Repository, paths: list[Path], moto_server: LocalS3
) -> None:
    repo.store.put(repo.layout.protocol, b"{not json")
    files = repo.put_files(paths[:3])
    before = modified(repo, files)
    moto_server.let_time_pass(2 * DAY)
    repo.put_files(paths[:3])
    assert records(repo) == {}
    assert all(after > before[d] for d, after in modified(repo, files).items())


def test_a_collector_older_than_the_marker_refuses_to_run(repo: S3Repository) -> None:
    repo.store.put(repo.layout.protocol, json.dumps({"collectors": 99}).encode())
    with pytest.raises(NotSupportedError, match="protocol 99"):
        repo.collect(ExactLiveset([]))
    assert [page.items for page in repo.store.list_pages(repo.layout.collections)] == [[]]
