"""Bytes are verified on the way in and on the way out: a repository never hands out,
nor stores, bytes that do not hash to their digest."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from contract_kit import Impl, MiB, UnknownLength, payload

from s3repo_core import Digest, File, IntegrityError, NotExistError

DAMAGE = {
    "flip": lambda data: data[:-1] + bytes([data[-1] ^ 1]),
    "truncate": lambda data: data[:-1],
    "extend": lambda data: data + b"!",
}


@pytest.mark.parametrize("size", [100, 2 * MiB + 5])
@pytest.mark.parametrize("damage", DAMAGE)
def test_an_object_corrupted_behind_our_back_fails_every_read(
    impl: Impl, tmp_path: Path, size: int, damage: str
) -> None:
    data = payload(size, seed=20)
    digest = impl.repo.put(data)
    impl.tamper(digest, DAMAGE[damage](data))

    with pytest.raises(IntegrityError), impl.repo.get(digest) as stream:
        stream.read()
    dest = tmp_path / "out" / "dest"
    dest.parent.mkdir()
    dest.write_bytes(b"previous contents")
    with pytest.raises(IntegrityError):
        impl.repo.get_file(digest, dest)
    assert dest.read_bytes() == b"previous contents"  # replaced only once verified
    assert sorted(p.name for p in dest.parent.iterdir()) == ["dest"]  # nothing partial
    with pytest.raises(IntegrityError), open(tmp_path / "open", "wb") as out:
        impl.repo.get_file(digest, out)


@pytest.mark.parametrize("damage", DAMAGE)
def test_integrity_errors_say_which_object(impl: Impl, tmp_path: Path, damage: str) -> None:
    data = payload(1000, seed=23)
    digest = impl.repo.put(data)
    impl.tamper(digest, DAMAGE[damage](data))
    reads = {
        "get": lambda: impl.repo.get(digest).read(),
        "get_file to a path": lambda: impl.repo.get_file(digest, tmp_path / "dest"),
        "get_file to a file": lambda: impl.repo.get_file(digest, io.BytesIO()),
    }
    for name, read in reads.items():
        with pytest.raises(IntegrityError) as caught:
            read()
        assert caught.value.digest == digest, name
        assert str(digest) in str(caught.value), name


def test_a_corrupted_object_read_in_pieces_fails_at_the_end(impl: Impl) -> None:
    data = payload(MiB, seed=21)
    digest = impl.repo.put(data)
    impl.tamper(digest, DAMAGE["flip"](data))
    with impl.repo.get(digest) as stream:
        assert stream.read(1000) == data[:1000]  # what verifies so far is handed out
        with pytest.raises(IntegrityError):
            while stream.read(64 * 1024):
                pass


@pytest.mark.parametrize("size", [10, 2 * MiB + 2])
@pytest.mark.parametrize("wrong", ["digest", "shorter", "longer"])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["stream", "bytes"])
def test_put_file_refuses_a_body_that_does_not_match_and_stores_nothing(
    impl: Impl, size: int, wrong: str, as_bytes: bool
) -> None:
    data = payload(size, seed=22)
    file = File(Digest.of(data), size)
    body = {
        "digest": data[:-1] + bytes([data[-1] ^ 0xFF]),
        "shorter": data[:-1],
        "longer": data + b"extra",
    }[wrong]
    with pytest.raises(IntegrityError) as caught:
        impl.repo.put_file(file, body if as_bytes else UnknownLength(body))
    assert caught.value.digest == file.digest
    with pytest.raises(NotExistError):
        impl.repo.stat(file.digest)
    assert impl.stored_keys() == []
