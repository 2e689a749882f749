"""Storing and reading back: every write path, every read path, and dedup."""

from __future__ import annotations

from pathlib import Path

import pytest
from contract_kit import Impl, MiB, UnknownLength, Unreadable, payload

from s3repo_core import Digest, File, IntegrityError, NotExistError, Repository, dial

SIZES = [0, 1, 4097, 3 * MiB + 7]


def read_all(repo: Repository, digest: Digest) -> bytes:
    with repo.get(digest) as stream:
        return stream.read()


@pytest.mark.parametrize("prefix", ["", "a", "deep/er/prefix"])
def test_it_is_a_repository_that_its_url_opens_again(impl: Impl, prefix: str) -> None:
    repo = impl.make(prefix)
    assert isinstance(repo, Repository)
    assert isinstance(repo.short_string(), str) and repo.short_string()
    fresh = dial(repo.url)  # before anything is stored
    assert type(fresh) is type(repo) and fresh.url == repo.url
    with pytest.raises(NotExistError) as caught:
        fresh.stat(Digest.of(b"found through the url"))
    assert caught.value.digest == Digest.of(b"found through the url")
    digest = repo.put(b"found through the url")
    assert read_all(dial(repo.url), digest) == b"found through the url"
    fresh.put(b"and stored through it")
    assert read_all(repo, Digest.of(b"and stored through it")) == b"and stored through it"


@pytest.mark.parametrize("size", SIZES)
def test_put_bytes_round_trips_through_every_read_path(
    impl: Impl, tmp_path: Path, size: int
) -> None:
    repo, data = impl.repo, payload(size)
    digest = repo.put(data)
    assert digest == Digest.of(data)
    assert repo.stat(digest) == File(digest, size)
    assert repo.stat(str(digest)) == File(digest, size)  # a digest's string is a digest
    assert read_all(repo, digest) == data
    assert repo.get_file(digest, tmp_path / "out") == size
    assert (tmp_path / "out").read_bytes() == data
    assert repo.get_file(str(digest), str(tmp_path / "by-str")) == size
    assert (tmp_path / "by-str").read_bytes() == data
    with open(tmp_path / "open", "wb") as out:
        assert repo.get_file(digest, out) == size
    assert (tmp_path / "open").read_bytes() == data
    assert impl.stored_keys() == [impl.key(digest)]


def test_get_file_into_an_open_file_writes_at_its_position(impl: Impl, tmp_path: Path) -> None:
    data = payload(2 * MiB + 3, seed=1)
    digest = impl.repo.put(data)
    with open(tmp_path / "dest", "wb") as out:
        out.write(b"header")
        assert impl.repo.get_file(digest, out) == len(data)
        assert out.tell() == len(b"header") + len(data)
        out.write(b"trailer")
    assert (tmp_path / "dest").read_bytes() == b"header" + data + b"trailer"


@pytest.mark.parametrize("size", [0, 3, MiB + 1])
def test_put_of_a_stream_of_unknown_length(impl: Impl, size: int) -> None:
    data = payload(size, seed=2)
    digest = impl.repo.put(UnknownLength(data))
    assert digest == Digest.of(data)
    assert read_all(impl.repo, digest) == data
    assert impl.stored_keys() == [impl.key(digest)]


def test_get_streams_in_small_pieces(impl: Impl) -> None:
    data = payload(3 * MiB, seed=3)
    digest = impl.repo.put(data)
    with impl.repo.get(digest) as stream:
        assert stream.read(10) == data[:10]
        assert stream.read(5) == data[10:15]
        assert stream.read() == data[15:]


@pytest.mark.parametrize("size", [0, 10, 2 * MiB + 1])
def test_put_file_round_trips(impl: Impl, size: int) -> None:
    data = payload(size, seed=4)
    file = File(Digest.of(data), size)
    assert impl.repo.put_file(file, UnknownLength(data)) is None
    assert impl.repo.stat(file.digest) == file
    assert read_all(impl.repo, file.digest) == data
    assert impl.stored_keys() == [impl.key(file.digest)]


def test_put_file_accepts_bytes_and_open_files(impl: Impl, tmp_path: Path) -> None:
    in_file, in_bytes = payload(MiB + 3, seed=5), payload(MiB + 3, seed=6)
    (tmp_path / "in").write_bytes(in_file)
    with open(tmp_path / "in", "rb") as opened:
        impl.repo.put_file(File(Digest.of(in_file), len(in_file)), opened)
    impl.repo.put_file(File(Digest.of(in_bytes), len(in_bytes)), memoryview(in_bytes))
    assert read_all(impl.repo, Digest.of(in_file)) == in_file
    assert read_all(impl.repo, Digest.of(in_bytes)) == in_bytes


# -- dedup ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [10, 2 * MiB + 1])
def test_content_stored_once_is_not_written_again(impl: Impl, size: int) -> None:
    data = payload(size, seed=7)
    with impl.count_writes() as first:
        digest = impl.repo.put(data)
    assert first.bytes == size  # the counter sees a write
    with impl.count_writes() as again:
        assert impl.repo.put(data) == digest
        assert impl.repo.put(bytearray(data)) == digest
        assert impl.repo.put(UnknownLength(data)) == digest
        impl.repo.put_file(File(digest, size), data)
        assert impl.make().put(data) == digest  # another writer finds it too
    assert again.bytes == 0
    assert impl.stored_keys() == [impl.key(digest)]
    assert read_all(impl.repo, digest) == data


def test_put_file_of_stored_content_reads_nothing(impl: Impl) -> None:
    data = payload(MiB, seed=8)
    file = File(Digest.of(data), len(data))
    impl.repo.put(data)
    with impl.count_writes() as written:
        impl.repo.put_file(file, Unreadable())
        impl.make().put_file(file, Unreadable())
    assert written.bytes == 0


def test_put_file_with_the_wrong_size_of_stored_content_is_refused(impl: Impl) -> None:
    digest = impl.repo.put(b"twelve bytes")
    with pytest.raises(IntegrityError, match="12 bytes") as caught:
        impl.repo.put_file(File(digest, 13), b"twelve bytes!")
    assert caught.value.digest == digest
    assert impl.repo.stat(digest) == File(digest, 12)


# -- failures mid-put ------------------------------------------------------------------


@pytest.mark.parametrize("size", [2000, 2 * MiB])
def test_a_body_that_fails_mid_stream_stores_nothing(impl: Impl, size: int) -> None:
    data = payload(size, seed=9)
    with pytest.raises(ConnectionResetError):
        impl.repo.put(UnknownLength(data, fail_after=size - 1000))
    with pytest.raises(ConnectionResetError):
        impl.repo.put_file(File(Digest.of(data), size), UnknownLength(data, fail_after=size - 1000))
    with pytest.raises(NotExistError):
        impl.repo.stat(Digest.of(data))
    assert impl.stored_keys() == []
