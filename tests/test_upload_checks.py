"""What put's write path checks, and who checks it, before anything is published.

A file longer than ``lookahead`` is read twice (``S3Writer.write_twice``): a first pass
learns its digest and each part's CRC32, the second uploads it checked against them. These
tests change the body between the passes in each way the second pass must notice, on a
real file (whose fstat is compared too) and on a BytesIO (which has none), and check that
nothing is published and no upload is left. They pin what the requests declare (each
part's CRC32, or its SHA-256 where the server checks), both answers of the probe that
chooses between them, and the check of a single PUT as it is sent.

moto's server alone: the checks are ours, not the server's; a proxy plays a server that
checks declared checksums, as AWS does.
"""

from __future__ import annotations

import base64
import io
import os
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.localserver import LocalS3
from s3repo_core import Digest, File, IntegrityError, S3Repository
from s3repo_core import _bucket as bucket_module
from s3repo_core._streams import Fingerprinted, fingerprint

from checksum_proxy import ChecksumProxy

MiB = 1024 * 1024
PART = 5 * MiB
LONG = 3 * PART + 12345  # four parts, the last short: read twice


def payload(size: int, seed: int) -> bytes:
    return (seed.to_bytes(4, "big") + os.urandom(size))[:size]


# -- what the server holds and what the client sent ------------------------------------


def keys(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def assert_clean(client: Any, bucket: str, expected: list[str] | None = None) -> None:
    """Nothing stored but ``expected``, and no multipart upload left open."""
    assert keys(client, bucket) == sorted(expected or [])
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


class Sent:
    """The operations a client sends, with their checksum headers (and each body's CRC32)."""

    def __init__(self, client: Any) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        client.meta.events.register("before-send.s3", self._record)

    def _record(self, request: Any, **kwargs: Any) -> None:
        name = kwargs["event_name"].rsplit(".", 1)[-1]
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else v
            for k, v in request.headers.items()
            if k.lower().startswith("x-amz-checksum") or k.lower() == "x-amz-sdk-checksum-algorithm"
        }
        body = request.body
        data = bytes(body) if isinstance(body, bytes | bytearray) else b""
        self.requests.append((name, headers, data))

    def of(self, name: str) -> list[tuple[dict[str, str], bytes]]:
        return [(headers, data) for op, headers, data in self.requests if op == name]


def crc32_of(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.fixture
def client(moto_server: LocalS3) -> Any:
    return moto_server.client()


@pytest.fixture
def bucket(moto_server: LocalS3) -> str:
    return moto_server.create_bucket()


def long_repo(bucket: str, client: Any) -> S3Repository:
    """A repository that reads anything longer than one 5 MiB part twice."""
    return S3Repository(bucket, "u", client=client, part_size=PART, lookahead=PART)


@pytest.fixture(autouse=True)
def _probe_again() -> Iterator[None]:
    """Each test starts with no server known to check checksums (the probe's memory)."""
    bucket_module._verifies_checksums.clear()
    yield
    bucket_module._verifies_checksums.clear()


# -- bodies that change between the passes ----------------------------------------------

_POLY = 0xEDB88320  # CRC32, reflected


def _crc_step_back(register: int) -> int:
    """One bit step of CRC32 run backwards (its input bit zero)."""
    if register & 0x80000000:
        return (((register ^ _POLY) << 1) | 1) & 0xFFFFFFFF
    return (register << 1) & 0xFFFFFFFF


def with_crc32(data: bytes, crc: int) -> bytes:
    """``data`` with its last four bytes replaced so that its CRC32 is ``crc``.

    Four bytes XORed into the register and run through 32 steps give the register after
    them, so the bytes that lead to the one ``crc`` needs are found by running back.
    """
    register = crc ^ 0xFFFFFFFF
    for _ in range(32):
        register = _crc_step_back(register)
    before = zlib.crc32(data[:-4]) ^ 0xFFFFFFFF
    return data[:-4] + (register ^ before).to_bytes(4, "little")


class RewoundFile(io.BufferedReader):
    """A real file that ``change`` rewrites on disk, once, as put seeks back to read it
    a second time (put's first seek: the first pass only reads)."""

    def __init__(self, path: Path, change: Callable[[Path], None]) -> None:
        super().__init__(io.FileIO(path, "rb"))
        self.path = path
        self.change = change
        self.changed = False

    def seek(self, offset: int, whence: int = 0) -> int:
        if not self.changed and self.tell() > 0:
            self.changed = True
            self.change(self.path)
        return super().seek(offset, whence)


class RewoundBytes(io.BytesIO):
    """A BytesIO that ``change`` alters, once, as put seeks back after reading it."""

    def __init__(self, data: bytes, change: Callable[[io.BytesIO], None]) -> None:
        super().__init__(data)
        self.change = change
        self.was_read = False
        self.changed = False

    def readinto(self, buffer: Any) -> int:
        n = super().readinto(buffer)
        self.was_read |= n > 0
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        if self.was_read and not self.changed:
            self.changed = True
            here = self.tell()
            self.change(self)
            super().seek(here)
        return super().seek(offset, whence)


def keep_every_crc_but_change_part_2(path: Path) -> None:
    """Other bytes in part 2, its CRC32 kept, same size, mtime set back: only ctime tells."""
    before = os.stat(path)
    data = path.read_bytes()
    part = bytearray(data[PART : 2 * PART])
    part[PART // 2] ^= 0xFF
    forged = with_crc32(bytes(part), zlib.crc32(data[PART : 2 * PART]))
    assert forged != data[PART : 2 * PART] and zlib.crc32(forged) == zlib.crc32(
        data[PART : 2 * PART]
    )
    with open(path, "r+b") as out:
        out.seek(PART)
        out.write(forged)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def append(path: Path) -> None:
    with open(path, "ab") as out:
        out.write(b"more")


def truncate(path: Path) -> None:
    os.truncate(path, LONG - 7)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (keep_every_crc_but_change_part_2, "changed as it was stored"),
        (append, "changed as it was stored"),
        (truncate, "changed as it was stored"),
    ],
)
def test_a_long_file_changed_between_the_passes_is_refused(
    client: Any, bucket: str, tmp_path: Path, change: Callable[[Path], None], message: str
) -> None:
    repo = long_repo(bucket, client)
    data = payload(LONG, seed=1)
    path = tmp_path / "long"
    path.write_bytes(data)
    with RewoundFile(path, change) as body, pytest.raises(IntegrityError, match=message) as info:
        repo.put(body)
    assert body.changed
    assert info.value.digest == Digest.of(data)
    assert_clean(client, bucket)


def flip_in_part_1(stream: io.BytesIO) -> None:
    with stream.getbuffer() as view:
        view[100] ^= 1


def cut_short(stream: io.BytesIO) -> None:
    stream.truncate(LONG - 7)


def lengthen(stream: io.BytesIO) -> None:
    stream.seek(0, io.SEEK_END)
    stream.write(b"more")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (flip_in_part_1, r"part 1 of .* changed since it was first read"),
        (cut_short, "got shorter than"),
        (lengthen, "got longer than"),
    ],
)
def test_a_long_bytesio_changed_between_the_passes_is_refused(
    client: Any, bucket: str, change: Callable[[io.BytesIO], None], message: str
) -> None:
    """No fstat to compare: each part's length and CRC32 are what tell."""
    repo = long_repo(bucket, client)
    body = RewoundBytes(payload(LONG, seed=2), change)
    with pytest.raises(IntegrityError, match=message):
        repo.put(body)
    assert body.changed
    assert_clean(client, bucket)


def test_a_body_kept_whole_is_stored_as_it_was_hashed(client: Any, bucket: str) -> None:
    """Up to lookahead, the one pass's bytes are uploaded: a later change cannot matter."""
    repo = S3Repository(bucket, "u", client=client, part_size=PART, lookahead=2 * PART)
    data = payload(PART + 1, seed=3)
    body = RewoundBytes(data, flip_in_part_1)
    digest = repo.put(body)
    assert digest == Digest.of(data)
    with repo.get(digest) as stream:
        assert stream.read() == data
    assert_clean(client, bucket, [f"u/objects/{digest}"])


def keep_the_crc_but_change_a_byte(path: Path) -> None:
    """Other bytes, the same CRC32 and size, mtime set back: only ctime tells."""
    before = os.stat(path)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    forged = with_crc32(bytes(data), zlib.crc32(path.read_bytes()))
    path.write_bytes(forged)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("where", ["file", "bytesio"])
def test_a_one_part_body_fingerprinted_but_not_kept_is_checked_as_it_is_sent(
    client: Any, bucket: str, tmp_path: Path, where: str
) -> None:
    """As a batch that hashed its files earlier would hand them over: one PUT, sent only
    if the file's fstat and its CRC32 are what the first pass saw."""
    repo = long_repo(bucket, client)
    data = payload(PART // 2, seed=16)
    path = tmp_path / "small"
    path.write_bytes(data)
    with open(path, "rb") if where == "file" else io.BytesIO(data) as body:
        known = fingerprint(body, repo.writer.part_size_for)
        assert known.data is None and len(known.crc32s) == 1
        body.seek(0)
        if isinstance(body, io.BytesIO):
            flip_in_part_1(body)
        else:
            keep_the_crc_but_change_a_byte(path)
        with pytest.raises(IntegrityError, match="changed as it was stored"):
            repo.put_file(known.file, Fingerprinted(body, known))  # type: ignore[arg-type]
    assert_clean(client, bucket)
    with open(path, "wb") as out:
        out.write(data)
    with open(path, "rb") as body:
        known = fingerprint(body, repo.writer.part_size_for)
        body.seek(0)
        repo.put_file(known.file, Fingerprinted(body, known))  # type: ignore[arg-type]
    assert_clean(client, bucket, [f"u/objects/{Digest.of(data)}"])


class CountedBytes(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def readinto(self, buffer: Any) -> int:
        n = super().readinto(buffer)
        self.read_bytes += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


@pytest.mark.parametrize(("size", "reads"), [(PART, 1), (LONG, 2)])
def test_a_body_is_read_once_if_kept_whole_and_twice_otherwise(
    client: Any, bucket: str, size: int, reads: int
) -> None:
    repo = long_repo(bucket, client)
    body = CountedBytes(payload(size, seed=4))
    repo.put(body)
    assert body.read_bytes == reads * size


# -- what the requests declare -------------------------------------------------------------


def test_parts_declare_the_crc32_of_what_they_carry(client: Any, bucket: str) -> None:
    """The CRC32 checked as each part is sent is declared, for the server to check what
    it received; botocore computes no other, and the upload is CRC32 throughout."""
    repo = long_repo(bucket, client)
    sent = Sent(client)
    data = payload(LONG, seed=5)
    repo.put(io.BytesIO(data))
    (create,) = sent.of("CreateMultipartUpload")
    assert create[0]["x-amz-checksum-algorithm"] == "CRC32"
    parts = sent.of("UploadPart")
    assert len(parts) == 4
    for headers, body in parts:
        assert set(headers) <= {"x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm"}
        assert headers["x-amz-checksum-crc32"] == crc32_of(body)
    (complete,) = sent.of("CompleteMultipartUpload")
    declared = re.findall(rb"<ChecksumCRC32>([^<]+)</ChecksumCRC32>", complete[1])
    # (the parts go concurrently: in any order)
    assert sorted(d.decode() for d in declared) == sorted(
        h["x-amz-checksum-crc32"] for h, _ in parts
    )
    with repo.get(Digest.of(data)) as stream:
        assert stream.read() == data


def test_a_client_told_to_send_checksums_only_where_required_sends_none(
    moto_server: LocalS3, bucket: str
) -> None:
    """For servers that refuse checksum headers: none is sent, and the checks stay ours."""
    client = moto_server.client(request_checksum_calculation="when_required")
    repo = long_repo(bucket, client)
    sent = Sent(client)
    data = payload(LONG, seed=6)
    digest = repo.put(io.BytesIO(data))
    repo.put_file(File(Digest.of(b"small"), 5), io.BytesIO(b"small"))
    assert sent.requests and all(not headers for _, headers, _ in sent.requests)
    with repo.get(digest) as stream:
        assert stream.read() == data
    with pytest.raises(IntegrityError, match="changed since it was first read"):
        repo.put(RewoundBytes(payload(LONG, seed=7), flip_in_part_1))


# -- a single PUT, checked as it is sent ---------------------------------------------------


@pytest.mark.parametrize("signed", [True, False], ids=["signed-payload", "unsigned-payload"])
def test_a_single_put_is_sent_only_if_its_bytes_are_the_digest(
    moto_server: LocalS3, bucket: str, signed: bool
) -> None:
    """Over plain HTTP botocore signs the body's SHA-256, which is compared; unsigned (as
    over HTTPS) it is computed. Either way wrong bytes never leave."""
    config = {} if signed else {"s3": {"payload_signing_enabled": False}}
    client = moto_server.client(**config)
    repo = S3Repository(bucket, "u", client=client, part_size=PART)
    sent = Sent(client)
    data = payload(PART // 2, seed=8)
    file = File(Digest.of(data), len(data))
    wrong = bytearray(data)
    wrong[7] ^= 1
    for body in (bytes(wrong), io.BytesIO(bytes(wrong))):
        with pytest.raises(IntegrityError, match="hashes to") as info:
            repo.put_file(file, body)
        assert info.value.digest == file.digest
    assert keys(client, bucket) == []
    repo.put_file(file, io.BytesIO(data))
    assert keys(client, bucket) == [f"u/objects/{file.digest}"]
    assert len(sent.of("PutObject")) == 1  # the refused ones were never sent


# -- a server that checks declared checksums ---------------------------------------------------


def test_the_probe_remembers_a_server_that_does_not_check(client: Any, bucket: str) -> None:
    repo = long_repo(bucket, client)
    sent = Sent(client)
    assert repo.store.verifies_checksums() is False  # unknown: not asked
    assert sent.requests == []
    assert repo.store.verifies_checksums("u/uploads/probe") is False
    assert [op for op, _, _ in sent.requests] == ["PutObject", "DeleteObject"]
    assert repo.store.verifies_checksums("u/uploads/probe-again") is False
    assert len(sent.requests) == 2  # remembered
    assert_clean(client, bucket)


def test_the_first_long_put_asks_and_the_next_keep_to_crc32(client: Any, bucket: str) -> None:
    repo = long_repo(bucket, client)
    sent = Sent(client)
    repo.put(io.BytesIO(payload(LONG, seed=9)))
    assert len(sent.of("PutObject")) == 1  # the probe, with no bytes
    sent.requests.clear()
    repo.put(io.BytesIO(payload(LONG, seed=10)))
    assert sent.of("PutObject") == []
    assert all("x-amz-checksum-sha256" not in h for h, _ in sent.of("UploadPart"))


def test_where_the_server_checks_parts_declare_their_sha256_and_it_refuses_a_change(
    moto_server: LocalS3, bucket: str
) -> None:
    with ChecksumProxy(moto_server.port) as proxy:
        client = moto_server.client(endpoint_url=proxy.endpoint_url)
        repo = long_repo(bucket, client)
        assert repo.store.verifies_checksums("u/uploads/probe") is True
        assert proxy.refused["sha256"] == 1 and keys(client, bucket) == []
        sent = Sent(client)
        data = payload(LONG, seed=11)
        digest = repo.put(io.BytesIO(data))
        (create,) = sent.of("CreateMultipartUpload")
        assert create[0]["x-amz-checksum-algorithm"] == "SHA256"
        for headers, body in sent.of("UploadPart"):
            assert "x-amz-checksum-crc32" not in headers
            expected = base64.b64encode(Digest.of(body).raw).decode()
            assert headers["x-amz-checksum-sha256"] == expected
        with repo.get(digest) as stream:
            assert stream.read() == data
        # The second pass is not checked here: the server refuses the changed part.
        refused = proxy.refused["sha256"]
        with pytest.raises(IntegrityError, match="BadDigest"):
            repo.put(RewoundBytes(payload(LONG, seed=12), flip_in_part_1))
        assert proxy.refused["sha256"] == refused + 1
        assert_clean(client, bucket, [f"u/objects/{digest}"])


def test_a_server_that_checks_is_asked_once(moto_server: LocalS3, bucket: str) -> None:
    with ChecksumProxy(moto_server.port) as proxy:
        client = moto_server.client(endpoint_url=proxy.endpoint_url)
        repo = long_repo(bucket, client)
        repo.put(io.BytesIO(payload(LONG, seed=13)))  # crc32 parts; asks on the way
        assert proxy.refused["sha256"] == 1
        repo.put(io.BytesIO(payload(LONG, seed=14)))
        repo.put(io.BytesIO(payload(LONG, seed=15)))
        assert proxy.refused["sha256"] == 1
        assert proxy.checked["sha256"] == 1 + 2 * 4
