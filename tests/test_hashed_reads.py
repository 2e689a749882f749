"""Reads whose every byte s3repo hashes (get, get_file, verify) skip botocore's CRC of
the same bytes; every other read keeps it.

A proxy gives each whole-object GET a wrong ``x-amz-checksum-crc32``: a read that still
checks the CRC fails on it, a read that hashes the bytes against the key does not.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from devkit.localserver import LocalS3
from s3repo_core import Digest, IntegrityError, S3Repository
from s3repo_core._bucket import S3Bucket

from loopback_proxy import LoopbackProxy, ask_upstream, replay, request_body

#: The CRC32 of no body this test stores.
WRONG_CRC = "AAAAAA=="
#: The Host header is kept: the request is signed for the proxy's address.
_NOT_FORWARDED = ("connection", "keep-alive", "content-length")


class WrongCrcProxy(LoopbackProxy):
    """Forwards to the server on ``upstream_port``; each GET without a Range comes back
    with a wrong CRC32, added where the server sent none. ``lied`` counts them."""

    def __init__(self, upstream_port: int) -> None:
        self.lied = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = request_body(self)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
                status, reply, data = ask_upstream(upstream_port, self, body, headers)
                whole = self.headers.get("Range") is None and "?" not in self.path
                if self.command == "GET" and status == 200 and whole:  # an object's bytes
                    reply = [(k, v) for k, v in reply if not k.lower().startswith("x-amz-checksum")]
                    reply.append(("x-amz-checksum-crc32", WRONG_CRC))
                    proxy.lied += 1
                replay(self, status, reply, data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        super().__init__(Handler)


@pytest.fixture
def lying(s3server: LocalS3) -> Iterator[tuple[WrongCrcProxy, str, bytes, Digest]]:
    """The proxy, and a bucket holding one object of a repository at ``hashed/``."""
    bucket = s3server.create_bucket()
    blob = os.urandom(300_000)
    S3Repository(bucket, "hashed", client=s3server.client()).put(blob)
    with WrongCrcProxy(s3server.port) as proxy:
        yield proxy, bucket, blob, Digest.of(blob)


def test_get_get_file_and_verify_check_the_bytes_not_the_servers_crc(
    s3server: LocalS3, lying: tuple[WrongCrcProxy, str, bytes, Digest], tmp_path: Path
) -> None:
    proxy, bucket, blob, digest = lying
    repo = S3Repository(bucket, "hashed", client=s3server.client(proxy.endpoint_url))
    with repo.get(digest) as stream:
        assert stream.read() == blob
    assert repo.get_file(digest, tmp_path / "out") == len(blob)
    assert (tmp_path / "out").read_bytes() == blob
    report = repo.verify([digest])
    assert (report.checked, report.failed, report.bytes_read) == (1, False, len(blob))
    assert proxy.lied >= 3  # each of them was told the wrong CRC


def test_a_read_that_is_not_hashed_still_checks_the_servers_crc(
    s3server: LocalS3, lying: tuple[WrongCrcProxy, str, bytes, Digest]
) -> None:
    proxy, bucket, blob, digest = lying
    store = S3Bucket(bucket, s3server.client(proxy.endpoint_url))
    key = S3Repository(bucket, "hashed", client=s3server.client()).layout.object_key(digest)
    with store.open(key, hashed=True) as body:  # not checked...
        assert body.read() == blob
    with pytest.raises(IntegrityError):  # ...and the next read on that client is
        store.read(key)
    assert proxy.lied == 2
