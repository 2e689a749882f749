"""Hashing on a background thread while the next bytes are read, in put and in get.

HashingReader.chunks (put's multipart path) and VerifyingReader (get) hand large
buffers to one hashing thread. The digest must still be that of the bytes in the order
read, verification must still happen at the end of every read pattern, and no thread
may outlive the reader or the generator, however they end.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import botocore.exceptions
import pytest

from devkit.localserver import LocalS3
from s3repo_core import Digest, IntegrityError, S3Repository, _streams
from s3repo_core import _bucket as bucket
from s3repo_core._streams import HashingReader, VerifyingReader

MiB = 1024 * 1024
PART = MiB  # above the size from which hashing moves to the thread
ROOT = Path(__file__).resolve().parent.parent


def payload(size: int, seed: int = 0) -> bytes:
    return (seed.to_bytes(4, "big") + os.urandom(size))[:size] if size else b""


def new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads started since ``before`` that are still alive after a short join."""
    started = [thread for thread in threading.enumerate() if thread not in before]
    for thread in started:
        thread.join(timeout=2)
    return [thread for thread in started if thread.is_alive()]


@pytest.fixture
def no_thread_left() -> Iterator[None]:
    """Fails the test if it leaves a thread running."""
    before = set(threading.enumerate())
    yield
    assert new_threads(before) == []


class NoReadinto:
    """A stream with only read(), returning fewer bytes than asked for now and then."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self._calls = 0

    def read(self, n: int = -1) -> bytes:
        self._calls += 1
        return self._data.read(n if self._calls % 3 else min(n, 12345))


# -- HashingReader.chunks -------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, PART - 1, PART, PART + 1, 5 * PART, 5 * PART + 12345], ids=str
)
@pytest.mark.parametrize("kind", ["bytesio", "read-only"])
def test_chunks_hash_to_what_hashlib_says(size: int, kind: str, no_thread_left: None) -> None:
    data = payload(size, seed=size)
    stream = io.BytesIO(data) if kind == "bytesio" else NoReadinto(data)
    reader = HashingReader(stream)  # type: ignore[arg-type]
    chunks = []
    for chunk in reader.chunks(lambda _: PART):
        chunks.append(bytes(chunk))
        assert reader.size == sum(map(len, chunks))  # counted when yielded
    assert reader.digest == Digest(hashlib.sha256(data).digest())
    assert reader.size == size
    assert b"".join(chunks) == data
    assert [len(c) for c in chunks] == [min(PART, size - i) for i in range(0, size, PART)] or [0]


def test_chunks_of_growing_size_hash_in_order(no_thread_left: None) -> None:
    data = payload(7 * PART + 3, seed=1)
    reader = HashingReader(io.BytesIO(data))
    sizes = [len(chunk) for chunk in reader.chunks(lambda number: number * PART)]
    assert sizes == [PART, 2 * PART, 3 * PART, PART + 3]
    assert reader.digest == Digest.of(data)


def test_a_chunk_is_hashed_on_a_thread_while_the_next_is_read(no_thread_left: None) -> None:
    seen: list[list[str]] = []

    class Watched(io.BytesIO):
        def readinto(self, buffer: Any) -> int:
            seen.append([t.name for t in threading.enumerate() if t.name.startswith("s3repo-hash")])
            return super().readinto(buffer)

    reader = HashingReader(Watched(payload(3 * PART)))
    for _ in reader.chunks(lambda _: PART):
        pass
    assert seen[0] == [] and all(names for names in seen[1:])
    # One chunk (the small-object case): no thread at all.
    seen.clear()
    reader = HashingReader(Watched(payload(PART - 1)))
    assert len(list(reader.chunks(lambda _: PART))) == 1
    assert seen and all(names == [] for names in seen)


# The thread must end with the generator, not only once the reader is collected: put
# keeps its reader after the parts are uploaded (or have failed).


def test_a_consumer_that_fails_midway_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    reader = HashingReader(io.BytesIO(payload(6 * PART)))

    def upload_two_parts_then_fail() -> None:
        for number, _ in enumerate(reader.chunks(lambda _: PART), start=1):
            if number == 3:
                raise ConnectionError("the upload failed")

    with pytest.raises(ConnectionError):
        upload_two_parts_then_fail()
    assert new_threads(before) == []
    assert reader.size == 3 * PART


@pytest.mark.parametrize("end", ["close", "del"])
def test_an_abandoned_generator_leaves_no_thread(end: str) -> None:
    before = set(threading.enumerate())
    reader = HashingReader(io.BytesIO(payload(6 * PART)))
    chunks = reader.chunks(lambda _: PART)
    next(chunks), next(chunks), next(chunks)
    if end == "close":
        chunks.close()
    else:
        del chunks
    assert new_threads(before) == []
    assert reader.size == 3 * PART


def test_a_stream_that_fails_midway_leaves_no_thread() -> None:
    before = set(threading.enumerate())

    class Dies(io.BytesIO):
        def readinto(self, buffer: Any) -> int:
            if self.tell() >= 2 * PART:
                raise ConnectionResetError("the producer died")
            return super().readinto(buffer)

    reader = HashingReader(Dies(payload(4 * PART)))
    with pytest.raises(ConnectionResetError):
        for _ in reader.chunks(lambda _: PART):
            pass
    assert new_threads(before) == []
    assert reader.size == 2 * PART


def test_a_generator_never_closed_does_not_hang_interpreter_exit() -> None:
    code = (
        "import io, os\n"
        "from s3repo_core._streams import HashingReader\n"
        "reader = HashingReader(io.BytesIO(os.urandom(8 << 20)))\n"
        "KEPT = reader.chunks(lambda _: 1 << 20)\n"
        "next(KEPT), next(KEPT), next(KEPT)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 0


def test_a_failed_hash_update_is_raised_not_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    class FailsOnSecondUpdate:
        def __init__(self) -> None:
            self.updates = 0

        def update(self, data: Any) -> None:
            self.updates += 1
            if self.updates == 2:
                raise MemoryError("no memory to hash with")

        def digest(self) -> bytes:
            return bytes(32)

    monkeypatch.setattr(_streams, "hashlib", SimpleNamespace(sha256=FailsOnSecondUpdate))
    reader = HashingReader(io.BytesIO(payload(3 * PART)))
    with pytest.raises(MemoryError):
        for _ in reader.chunks(lambda _: PART):
            pass
        reader.digest  # noqa: B018 (the failure may surface only here)
    with pytest.raises(MemoryError):
        reader.digest  # noqa: B018 (and again: never a digest of the bytes minus a part)


# -- VerifyingReader --------------------------------------------------------------------


class Body:
    """A botocore StreamingBody stand-in: read(n) returns new bytes; may break once."""

    def __init__(self, data: bytes, break_at: int | None = None) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._break_at = break_at
        self.closed = False

    def read(self, n: int) -> bytes:
        if self._break_at is not None and self._pos >= self._break_at:
            raise botocore.exceptions.ResponseStreamingError(error="connection reset")
        chunk = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(chunk)
        return chunk

    def close(self) -> None:
        self.closed = True


def verifying(
    data: bytes, served: bytes | None = None, break_at: int | None = None
) -> tuple[VerifyingReader, list[int]]:
    """A reader expecting ``data`` and served ``served``; the offsets it resumed from."""
    served = data if served is None else served
    resumed: list[int] = []

    def translating(body: Body) -> bucket.Body:
        # What S3Bucket.open returns: its reads raise the library's errors.
        return bucket.Body(body, len(served), None, "the object", "k")

    def open_range(offset: int) -> bucket.Body:
        resumed.append(offset)
        return translating(Body(served[offset:]))

    reader = VerifyingReader(
        Digest.of(data), len(data), open_range, translating(Body(served, break_at)), "the object"
    )
    return reader, resumed


def read_all(reader: VerifyingReader, buffer_size: int) -> bytes:
    """Read to the end into one reused buffer, as io.BufferedReader does."""
    out = bytearray()
    buffer = bytearray(buffer_size)
    while n := reader.readinto(buffer):
        out += buffer[:n]
        buffer[:n] = bytes(n)  # the caller reuses its buffer: it must not be hashed later
    return bytes(out)


SIZE = 3 * MiB + 5
BUFFERS = [4096, 512 * 1024 - 1, 512 * 1024, MiB, SIZE, 2 * SIZE]


@pytest.mark.parametrize("buffer_size", BUFFERS, ids=str)
def test_the_bytes_read_to_the_end_verify(buffer_size: int, no_thread_left: None) -> None:
    data = payload(SIZE, seed=2)
    reader, _ = verifying(data)
    assert read_all(reader, buffer_size) == data
    assert reader.readinto(bytearray(10)) == 0  # verified once, EOF from then on
    reader.close()


@pytest.mark.parametrize("read", ["read(1 MiB)", "read(4 MiB)", "read()", "readinto"])
def test_a_buffered_stream_verifies_as_get_returns_it(read: str, no_thread_left: None) -> None:
    data = payload(SIZE, seed=3)
    with io.BufferedReader(verifying(data)[0], buffer_size=MiB) as stream:
        if read == "read()":
            assert stream.read() == data
        elif read == "readinto":
            out, buffer = bytearray(), bytearray(2 * MiB)
            while n := stream.readinto(buffer):
                out += buffer[:n]
            assert out == data
        else:
            size = MiB if read == "read(1 MiB)" else 4 * MiB
            assert b"".join(iter(lambda: stream.read(size), b"")) == data


DAMAGE: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "flip first": (lambda b: bytes([b[0] ^ 1]) + b[1:], "hash to"),
    "flip last": (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "hash to"),
    "truncate": (lambda b: b[:-1], "expected"),
    "extend": (lambda b: b + b"!", "more bytes"),
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("buffer_size", [64 * 1024, MiB, 2 * SIZE], ids=str)
def test_wrong_bytes_raise_integrity_error_at_the_end(
    damage: str, buffer_size: int, no_thread_left: None
) -> None:
    data = payload(SIZE, seed=4)
    change, message = DAMAGE[damage]
    reader, _ = verifying(data, served=change(data))
    got = bytearray()
    buffer = bytearray(buffer_size)
    with pytest.raises(IntegrityError, match=message):
        while n := reader.readinto(buffer):
            got += buffer[:n]
    if damage.startswith("flip"):
        assert len(got) == SIZE  # every byte is handed out; the end of the stream raises
    reader.close()


def test_small_objects_verify_too(no_thread_left: None) -> None:
    for data in [b"", b"x", payload(100_000)]:
        reader, _ = verifying(data)
        assert read_all(reader, 8192) == data
        reader, _ = verifying(data, served=data + b"?")
        with pytest.raises(IntegrityError):
            read_all(reader, MiB)


@pytest.mark.parametrize("buffer_size", [64 * 1024, MiB], ids=str)
def test_a_broken_connection_is_resumed_and_still_verified(
    buffer_size: int, no_thread_left: None
) -> None:
    data = payload(SIZE, seed=5)
    break_at = MiB + MiB // 2
    reader, resumed = verifying(data, break_at=break_at)
    assert read_all(reader, buffer_size) == data
    # From the first byte it had not read: the connection breaks on the read after break_at.
    assert resumed == [-(-break_at // buffer_size) * buffer_size]
    # The resumed bytes are verified with the rest.
    bad = data[:-1] + bytes([data[-1] ^ 1])
    reader, resumed = verifying(data, served=bad, break_at=2 * MiB)
    with pytest.raises(IntegrityError, match="hash to"):
        read_all(reader, buffer_size)
    assert resumed


@pytest.mark.parametrize("end", ["closed midway", "read to the end"])
def test_a_reader_leaves_no_thread_once_closed_or_verified(end: str) -> None:
    before = set(threading.enumerate())
    reader, _ = verifying(payload(6 * MiB))
    buffer = bytearray(MiB)
    if end == "closed midway":
        for _ in range(3):
            reader.readinto(buffer)
        reader.close()
    else:
        while reader.readinto(buffer):
            pass
    assert new_threads(before) == []
    assert reader.closed == (end == "closed midway")


# -- through S3 ---------------------------------------------------------------------------


@pytest.fixture
def moto_repo(moto_server: LocalS3) -> tuple[S3Repository, Any, str]:
    client = moto_server.client()
    bucket = moto_server.create_bucket()
    return S3Repository(bucket, "p", client=client, part_size=5 * MiB), client, bucket


@pytest.mark.parametrize("read_size", [MiB, 4 * MiB], ids=str)
def test_get_verifies_large_reads_on_moto(
    moto_repo: tuple[S3Repository, Any, str], read_size: int
) -> None:
    repo, client, bucket = moto_repo
    data = payload(6 * MiB + 7, seed=6)
    digest = repo.put(data)
    with repo.get(digest) as stream:
        assert b"".join(iter(lambda: stream.read(read_size), b"")) == data
    bad = data[:-1] + bytes([data[-1] ^ 1])
    client.put_object(Bucket=bucket, Key=f"p/objects/{digest}", Body=bad)
    with pytest.raises(IntegrityError, match="hash to"), repo.get(digest) as stream:
        while stream.read(read_size):
            pass
