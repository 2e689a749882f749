"""The repository contract, run against every S3 server in ``conftest.SERVERS``.

Each test here talks over HTTP to a real server on 127.0.0.1 through boto3.
"""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from devkit.localserver import LocalS3
from s3repo_core import (
    Digest,
    File,
    IntegrityError,
    InvalidArgumentError,
    NotExistError,
    S3Repository,
    dial,
    set_client,
)

from requests_log import RequestLog

MiB = 1024 * 1024
PART = 5 * MiB
# From empty to several multipart parts, around the part boundary.
SIZES = [0, 1, 4097, PART - 1, PART, PART + 1, 3 * PART + 12345]
# What a put of stored content may send: a HEAD, and for content stored within the last
# `settle`, a look for running collections and a second HEAD. Never any data.
READ_ONLY = {"HeadObject", "ListObjectsV2"}


def payload(size: int, seed: int = 0) -> bytes:
    return (seed.to_bytes(4, "big") + os.urandom(size))[:size] if size else b""


class UnknownLength(io.RawIOBase):
    """A stream that can only be read: no seek, no tell, no length, ragged reads."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._fail_after = fail_after
        self._step = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise ConnectionResetError("the producer died mid-stream")
        self._step += 1
        n = min(len(buffer), 65536 + 977 * (self._step % 7), len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def open_uploads(client: Any, bucket: str) -> list[str]:
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def assert_clean(client: Any, bucket: str, expected_objects: list[str] | None = None) -> None:
    """Nothing but ``expected_objects``: no stray upload, no open multipart upload."""
    assert keys(client, bucket) == sorted(expected_objects or [])
    assert open_uploads(client, bucket) == []


# -- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_put_bytes_round_trips_through_every_read_path(
    repo: S3Repository, client: Any, bucket: str, tmp_path: Path, size: int
) -> None:
    data = payload(size)
    digest = repo.put(data)
    assert digest == Digest.of(data)
    assert repo.stat(digest) == File(digest, size)
    with repo.get(digest) as stream:
        assert stream.read() == data
    assert repo.get_file(digest, tmp_path / "out") == size
    assert (tmp_path / "out").read_bytes() == data
    with open(tmp_path / "open", "wb") as out:
        assert repo.get_file(digest, out) == size
    assert (tmp_path / "open").read_bytes() == data
    assert_clean(client, bucket, [f"some/prefix/objects/{digest}"])


@pytest.mark.parametrize("size", [0, 3, PART + 1, 3 * PART + 5])
def test_put_of_a_stream_of_unknown_length(repo: S3Repository, size: int) -> None:
    data = payload(size, seed=1)
    digest = repo.put(UnknownLength(data))
    assert digest == Digest.of(data)
    with repo.get(digest) as stream:
        assert stream.read() == data


@pytest.mark.parametrize("size", [PART + 1, 3 * PART + 5])
def test_long_streams_upload_while_hashing_and_publish_by_copy(
    bucket: str, client: Any, size: int
) -> None:
    repo = S3Repository(bucket, "p", part_size=PART, lookahead=PART)
    log = RequestLog(client)
    data = payload(size, seed=2)
    digest = repo.put(UnknownLength(data))
    assert digest == Digest.of(data)
    assert log.uploaded == size  # one pass: every byte sent once
    assert log.calls["CopyObject"] == 1
    with repo.get(digest) as stream:
        assert stream.read() == data
    assert_clean(client, bucket, [f"p/objects/{digest}"])


def test_streams_are_read_in_small_pieces(repo: S3Repository) -> None:
    """get() streams: reading a little does not need the whole object."""
    data = payload(3 * PART, seed=3)
    digest = repo.put(data)
    with repo.get(digest) as stream:
        assert stream.read(10) == data[:10]
        assert stream.read(5) == data[10:15]


@pytest.mark.parametrize("size", [0, 10, PART, 3 * PART + 1])
def test_put_file_round_trips(repo: S3Repository, client: Any, bucket: str, size: int) -> None:
    data = payload(size, seed=4)
    file = File(Digest.of(data), size)
    repo.put_file(file, UnknownLength(data))
    assert repo.stat(file.digest) == file
    with repo.get(file.digest) as stream:
        assert stream.read() == data
    assert_clean(client, bucket, [f"some/prefix/objects/{file.digest}"])


def test_put_file_accepts_bytes_and_files(repo: S3Repository, tmp_path: Path) -> None:
    # Distinct content for each body, so that each is read and uploaded, not deduped.
    in_file, in_bytes = payload(2 * PART + 3, seed=5), payload(2 * PART + 3, seed=8)
    path = tmp_path / "in"
    path.write_bytes(in_file)
    for data, body in ((in_file, None), (in_bytes, in_bytes)):
        file = File(Digest.of(data), len(data))
        with pytest.raises(NotExistError):
            repo.stat(file.digest)
        if body is None:
            with open(path, "rb") as opened:
                repo.put_file(file, opened)
        else:
            repo.put_file(file, body)
        assert repo.stat(file.digest) == file
        with repo.get(file.digest) as stream:
            assert stream.read() == data


# -- dedup ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [10, 3 * PART + 1])
def test_a_second_put_uploads_no_data(repo: S3Repository, client: Any, size: int) -> None:
    data = payload(size, seed=6)
    first = repo.put(data)
    log = RequestLog(client)
    assert repo.put(data) == first
    assert repo.put(UnknownLength(data)) == first
    assert log.uploaded == 0
    assert set(log.calls) <= READ_ONLY


def test_put_file_of_a_stored_object_reads_nothing(repo: S3Repository, client: Any) -> None:
    data = payload(3 * PART, seed=7)
    file = File(Digest.of(data), len(data))
    repo.put_file(file, data)
    log = RequestLog(client)

    class Unreadable(io.RawIOBase):
        def readinto(self, buffer: Any) -> int:
            raise AssertionError("the body of a stored object must not be read")

    repo.put_file(file, Unreadable())
    assert log.uploaded == 0
    assert set(log.calls) <= READ_ONLY


def test_put_file_with_the_wrong_size_of_a_stored_object_is_refused(repo: S3Repository) -> None:
    digest = repo.put(b"twelve bytes")
    with pytest.raises(IntegrityError, match="12 bytes"):
        repo.put_file(File(digest, 13), b"twelve bytes")


@pytest.mark.parametrize("stored", [False, True])
def test_a_long_file_is_hashed_first_and_uploaded_straight_to_its_key(
    bucket: str, client: Any, tmp_path: Path, stored: bool
) -> None:
    repo = S3Repository(bucket, "p", part_size=PART, lookahead=PART)
    data = payload(2 * PART + 1, seed=21)
    (tmp_path / "long").write_bytes(data)
    if stored:
        repo.put(data)
    log = RequestLog(client)
    with open(tmp_path / "long", "rb") as body:
        assert repo.put(body) == Digest.of(data)
    assert log.uploaded == (0 if stored else len(data))  # never through uploads/
    assert log.calls["CopyObject"] == 0
    if stored:
        assert set(log.calls) <= READ_ONLY
    with repo.get(Digest.of(data)) as stream:
        assert stream.read() == data
    assert_clean(client, bucket, [f"p/objects/{Digest.of(data)}"])


class ChangesWhenRewound(io.BytesIO):
    """A file whose bytes change between put's hashing pass and its upload."""

    read_to_the_end = False

    def readinto(self, buffer: Any) -> int:
        n = super().readinto(buffer)
        self.read_to_the_end |= n == 0
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) == (0, 0) and self.read_to_the_end:
            self.read_to_the_end = False  # once
            with self.getbuffer() as view:
                view[-1] ^= 1
        return super().seek(offset, whence)


def test_a_file_that_changes_while_it_is_put_is_refused(bucket: str, client: Any) -> None:
    repo = S3Repository(bucket, "p", part_size=PART, lookahead=PART)
    with pytest.raises(IntegrityError, match="changed"):
        repo.put(ChangesWhenRewound(payload(2 * PART + 1, seed=22)))
    assert_clean(client, bucket)


def test_a_long_stream_already_stored_is_not_published_twice(bucket: str, client: Any) -> None:
    repo = S3Repository(bucket, "p", part_size=PART, lookahead=PART)
    data = payload(2 * PART + 1, seed=8)
    digest = repo.put(data)
    log = RequestLog(client)
    assert repo.put(UnknownLength(data)) == digest
    assert log.calls["CopyObject"] == 0
    assert log.calls["CompleteMultipartUpload"] == 0
    assert log.calls["AbortMultipartUpload"] == 1
    assert_clean(client, bucket, [f"p/objects/{digest}"])


def test_a_stale_object_is_refreshed_when_a_writer_finds_it(
    s3server: LocalS3, bucket: str, client: Any
) -> None:
    # A window that a loaded machine's next put cannot outlast (at 1 s, one did), and
    # the object aged past it on the server's clock (moved on moto, waited elsewhere).
    repo = S3Repository(bucket, "p", refresh_window=timedelta(seconds=5))
    data = b"refresh me"
    digest = repo.put(data)
    key = f"p/objects/{digest}"
    before = client.head_object(Bucket=bucket, Key=key)["LastModified"]
    s3server.let_time_pass(6.1)  # past the window; Last-Modified is whole seconds
    repo.put(data)
    after = client.head_object(Bucket=bucket, Key=key)
    assert after["LastModified"] > before
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    # A fresh object is left alone: no copy.
    log = RequestLog(client)
    repo.put(data)
    assert log.calls["CopyObject"] == 0


@pytest.mark.parametrize("how", ["put", "put_file"])
def test_an_object_collected_while_a_writer_refreshes_it_is_written_again(
    s3server: LocalS3, bucket: str, client: Any, how: str
) -> None:
    repo = S3Repository(bucket, "p", refresh_window=timedelta(seconds=1))
    data = b"collected under the writer"
    digest = repo.put(data)
    key = f"p/objects/{digest}"
    time.sleep(2.1)  # older than refresh_window: the next put refreshes it with a copy
    other = s3server.client()
    copies: list[str] = []

    def collect_first(params: dict[str, Any], **_: Any) -> None:
        if not copies:  # as if a collection's delete landed between the HEAD and the copy
            other.delete_object(Bucket=bucket, Key=key)
        copies.append(params["Key"])

    client.meta.events.register("before-parameter-build.s3.CopyObject", collect_first)
    if how == "put":
        assert repo.put(data) == digest
    else:
        repo.put_file(File(digest, len(data)), data)
    assert copies  # the refresh was attempted, and found the object gone
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == data


# -- integrity -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [100, 3 * PART])
@pytest.mark.parametrize("damage", ["flip", "truncate", "extend"])
def test_an_object_corrupted_behind_our_back_fails_every_read(
    repo: S3Repository, client: Any, bucket: str, tmp_path: Path, size: int, damage: str
) -> None:
    data = payload(size, seed=9)
    digest = repo.put(data)
    bad = {"flip": data[:-1] + bytes([data[-1] ^ 1]), "truncate": data[:-1], "extend": data + b"!"}[
        damage
    ]
    client.put_object(Bucket=bucket, Key=f"some/prefix/objects/{digest}", Body=bad)

    with pytest.raises(IntegrityError), repo.get(digest) as stream:
        stream.read()
    dest = tmp_path / "dest"
    dest.write_bytes(b"previous contents")
    with pytest.raises(IntegrityError):
        repo.get_file(digest, dest)
    assert dest.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


def test_get_file_into_a_missing_directory_is_a_local_file_error(
    repo: S3Repository, tmp_path: Path
) -> None:
    """A local problem is an OSError, not a missing object: the CLI tells them apart."""
    digest = repo.put(b"content")
    with pytest.raises(FileNotFoundError, match="no such directory"):
        repo.get_file(digest, tmp_path / "missing" / "dest")
    with pytest.raises(IsADirectoryError):
        repo.get_file(digest, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", [10, 2 * PART + 1])
def test_get_file_creates_files_under_the_umask(
    repo: S3Repository, tmp_path: Path, size: int
) -> None:
    digest = repo.put(payload(size, seed=3))
    old = os.umask(0o027)
    try:
        repo.get_file(digest, tmp_path / "dest")
    finally:
        os.umask(old)
    assert (tmp_path / "dest").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("size", [10, 3 * PART + 2])
@pytest.mark.parametrize("wrong", ["digest", "shorter", "longer"])
def test_put_file_refuses_a_body_that_does_not_match(
    repo: S3Repository, client: Any, bucket: str, size: int, wrong: str
) -> None:
    data = payload(size, seed=10)
    file = File(Digest.of(data), size)
    body = {
        "digest": data[:-1] + bytes([data[-1] ^ 0xFF]),
        "shorter": data[:-1],
        "longer": data + b"extra",
    }[wrong]
    with pytest.raises(IntegrityError):
        repo.put_file(file, UnknownLength(body))
    with pytest.raises(NotExistError):
        repo.stat(file.digest)
    assert_clean(client, bucket)


# -- failures mid-put --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "lookahead"), [(PART, 64 * MiB), (4 * PART, 64 * MiB), (4 * PART, PART)]
)
def test_a_body_that_fails_mid_stream_leaves_nothing(
    bucket: str, client: Any, size: int, lookahead: int
) -> None:
    repo = S3Repository(bucket, "p", part_size=PART, lookahead=lookahead)
    data = payload(size, seed=11)
    with pytest.raises(ConnectionResetError):
        repo.put(UnknownLength(data, fail_after=size - 1000))
    file = File(Digest.of(data), size)
    with pytest.raises(ConnectionResetError):
        repo.put_file(file, UnknownLength(data, fail_after=size - 1000))
    assert_clean(client, bucket)


# -- copies ----------------------------------------------------------------------------


def test_objects_above_the_copy_threshold_are_copied_in_parts(bucket: str, client: Any) -> None:
    repo = S3Repository(bucket, "p", part_size=PART, lookahead=PART, copy_threshold=PART)
    data = payload(3 * PART + 7, seed=12)
    log = RequestLog(client)
    digest = repo.put(UnknownLength(data))
    assert log.calls["CopyObject"] == 0
    assert log.calls["UploadPartCopy"] == 4
    with repo.get(digest) as stream:
        assert stream.read() == data
    assert_clean(client, bucket, [f"p/objects/{digest}"])


def test_write_to_and_read_from_copy_server_side_between_s3_repositories(
    s3server: Any, bucket: str, client: Any
) -> None:
    other_bucket = s3server.create_bucket()
    set_client(client, bucket=other_bucket)
    try:
        src = S3Repository(bucket, "src")
        data = payload(2 * PART, seed=13)
        digest = src.put(data)
        log = RequestLog(client)
        src.write_to(digest, f"s3r://{other_bucket}/dst")
        S3Repository(bucket, "back").read_from(digest, f"s3r://{other_bucket}/dst")
        assert log.uploaded == 0
        assert log.calls["CopyObject"] == 2
        for url in (f"s3r://{other_bucket}/dst", f"s3r://{bucket}/back"):
            with dial(url).get(digest) as stream:
                assert stream.read() == data
        with pytest.raises(NotExistError):
            src.write_to(Digest.of(b"absent"), f"s3r://{other_bucket}/dst")
    finally:
        set_client(None, bucket=other_bucket)


def test_write_to_a_repository_elsewhere_streams_through_and_verifies(
    repo: S3Repository, memory_scheme: dict[str, bytes]
) -> None:
    data = payload(PART + 5, seed=14)
    digest = repo.put(data)
    repo.write_to(digest, "mem://elsewhere")
    assert memory_scheme[str(digest)] == data
    second = payload(100, seed=15)
    memory_scheme[str(Digest.of(second))] = second
    repo.read_from(Digest.of(second), "mem://elsewhere")
    assert repo.stat(Digest.of(second)).size == 100


# -- layout and compatibility with the Go original ----------------------------------------


@pytest.mark.parametrize("prefix", ["", "a", "deep/er/prefix"])
def test_a_bucket_written_by_the_go_original_reads_back(
    bucket: str, client: Any, prefix: str, tmp_path: Path
) -> None:
    data = payload(PART + 3, seed=16)
    digest = Digest.of(data)
    root = f"{prefix}/" if prefix else ""
    client.put_object(Bucket=bucket, Key=f"{root}objects/sha256:{digest.hex}", Body=data)
    client.put_object(Bucket=bucket, Key=f"{root}uploads/0123456789abcdef", Body=b"partial")
    repo = dial(f"s3r://{bucket}/{prefix}")
    assert repo.stat(digest) == File(digest, len(data))
    with repo.get(digest) as stream:
        assert stream.read() == data
    assert repo.get_file(digest, tmp_path / "x") == len(data)
    # And what we write has exactly that layout.
    ours = repo.put(b"written by us")
    assert f"{root}objects/sha256:{ours.hex}" in keys(client, bucket)
    assert len(keys(client, bucket)) == 3


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "digest", ["", "sha256:abc", "sha256:" + "A" * 64, "md5:" + "a" * 64, "junk"]
)
def test_malformed_digests_are_refused_before_any_request(
    repo: S3Repository, client: Any, tmp_path: Path, digest: str
) -> None:
    log = RequestLog(client)
    for call in (repo.stat, repo.get, lambda d: repo.get_file(d, tmp_path / "x")):
        with pytest.raises(InvalidArgumentError):
            call(digest)
    with pytest.raises(InvalidArgumentError):
        repo.write_to(digest, repo.url)
    assert sum(log.calls.values()) == 0
    assert not (tmp_path / "x").exists()


def test_missing_objects_are_not_exist_errors(repo: S3Repository, tmp_path: Path) -> None:
    digest = Digest.of(b"never stored")
    with pytest.raises(NotExistError):
        repo.stat(digest)
    with pytest.raises(NotExistError):
        repo.get(digest)
    with pytest.raises(NotExistError):
        repo.get_file(digest, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_missing_bucket_is_a_not_exist_error(client: Any) -> None:
    name = "s3repo-no-such-bucket"
    set_client(client, bucket=name)
    try:
        repo = S3Repository(name, "p")
        with pytest.raises(NotExistError):
            repo.stat(Digest.of(b"x"))
        with pytest.raises(NotExistError):
            repo.get(Digest.of(b"x"))
        with pytest.raises(NotExistError):
            repo.put(b"x")
        with pytest.raises(NotExistError):
            repo.put(payload(2 * PART))
    finally:
        set_client(None, bucket=name)


@pytest.mark.parametrize("body", ["text", 42, None, [b"a"]])
def test_bodies_that_are_not_bytes_are_refused(repo: S3Repository, body: object) -> None:
    with pytest.raises(InvalidArgumentError):
        repo.put(body)  # type: ignore[arg-type]


def test_a_text_stream_is_refused_and_nothing_is_stored(
    repo: S3Repository, client: Any, bucket: str
) -> None:
    with pytest.raises(InvalidArgumentError, match="binary"):
        repo.put(io.StringIO("text"))
    assert_clean(client, bucket)


def test_put_file_needs_a_file(repo: S3Repository) -> None:
    with pytest.raises(InvalidArgumentError):
        repo.put_file((Digest.of(b"x"), 1), b"x")  # type: ignore[arg-type]
