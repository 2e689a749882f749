"""PutObject sent directly (``_leanput``) by the clients s3repo builds: the same request
botocore would send, one round trip, the same errors, retries and attempt counts."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from test_not_s3 import WebServer

from devkit.localserver import LocalS3
from s3repo_core import (
    Digest,
    IntegrityError,
    PermissionDeniedError,
    S3Repository,
    UnavailableError,
    make_client,
)
from s3repo_core._client import lean_put

from faultproxy import FaultProxy
from policy_proxy import PolicyProxy

Seen = list[tuple[str, str, dict[str, str]]]


def built_client(server: LocalS3, endpoint_url: str, **settings: Any) -> Any:
    return make_client(
        endpoint_url=endpoint_url,
        region=server.region,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        **settings,
    )


@pytest.fixture
def recorder(s3server: LocalS3) -> Iterator[tuple[PolicyProxy, Seen]]:
    """A proxy that forwards everything and records each request's headers."""
    seen: Seen = []

    def record(method: str, path: str, headers: dict[str, str]) -> None:
        seen.append((method, path, headers))
        return None

    with PolicyProxy(s3server.port, record) as proxy:
        yield proxy, seen


def object_puts(seen: Seen) -> list[dict[str, str]]:
    return [headers for method, path, headers in seen if method == "PUT" and "/objects/" in path]


def test_after_the_first_each_put_is_one_request_botocore_would_sign(
    s3server: LocalS3, recorder: tuple[PolicyProxy, Seen]
) -> None:
    proxy, seen = recorder
    bucket = s3server.create_bucket()
    client = built_client(s3server, proxy.endpoint_url)
    repo = S3Repository.from_url(f"s3r://{bucket}/lean", client=client)
    blobs = [os.urandom(3000 + i) for i in range(5)]
    digests = [repo.put(blob) for blob in blobs]
    lean = lean_put(client)
    assert lean is not None and lean.knows(bucket)
    puts = object_puts(seen)
    assert len(puts) == len(blobs)  # nothing sent twice
    for blob, digest, headers in zip(blobs[1:], digests[1:], puts[1:], strict=True):
        assert "expect" not in headers  # no 100-continue round trip
        assert headers["x-amz-content-sha256"] == digest.hex  # the signed body is the digest
        assert headers["x-amz-meta-content-sha256"] == digest.hex
        crc = base64.b64encode(zlib.crc32(blob).to_bytes(4, "big")).decode()
        assert headers["x-amz-checksum-crc32"] == crc
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert puts[1]["user-agent"] == puts[0]["user-agent"]
    reader = s3server.client()
    for blob, digest in zip(blobs, digests, strict=True):
        assert repo.get(digest).read() == blob
        key = repo.layout.object_key(digest)
        got = reader.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert got["Body"].read() == blob  # botocore checks the CRC32 the PUT declared
    # A key that needs quoting lands where botocore would put it.
    repo.store.put("lean/odd key+é~:x", b"odd")
    assert reader.get_object(Bucket=bucket, Key="lean/odd key+é~:x")["Body"].read() == b"odd"
    assert "expect" not in seen[-1][2]


def test_write_options_and_the_bucket_owner_go_with_each_direct_put(
    moto_server: LocalS3,
) -> None:
    seen: Seen = []

    def record(method: str, path: str, headers: dict[str, str]) -> None:
        seen.append((method, path, headers))

    with PolicyProxy(moto_server.port, record) as proxy:
        bucket = moto_server.create_bucket()
        client = built_client(moto_server, proxy.endpoint_url)
        owner = "111122223333"
        url = f"s3r://{bucket}/opt?sse=AES256&storage_class=STANDARD_IA&owner={owner}"
        repo = S3Repository.from_url(url, client=client)
        first, second = repo.put(b"first"), repo.put(b"second")
        assert lean_put(client).knows(bucket)  # type: ignore[union-attr]
        direct = object_puts(seen)[-1]
        assert "expect" not in direct
        assert direct["x-amz-server-side-encryption"] == "AES256"
        assert direct["x-amz-storage-class"] == "STANDARD_IA"
        assert direct["x-amz-expected-bucket-owner"] == owner
        for digest in (first, second):
            key = repo.layout.object_key(digest)
            head = moto_server.client().head_object(Bucket=bucket, Key=key)
            assert head["ServerSideEncryption"] == "AES256"
            assert head["StorageClass"] == "STANDARD_IA"


def test_a_body_that_is_not_its_digest_is_never_sent(
    moto_server: LocalS3,
) -> None:
    seen: Seen = []
    with PolicyProxy(moto_server.port, lambda m, p, h: seen.append((m, p, h))) as proxy:
        bucket = moto_server.create_bucket()
        repo = S3Repository.from_url(
            f"s3r://{bucket}/p", client=built_client(moto_server, proxy.endpoint_url)
        )
        repo.put(b"teaches the route")
        before = len(seen)
        wrong = hashlib.sha256(b"other bytes").hexdigest()
        with pytest.raises(IntegrityError) as caught:
            repo.store.put("p/objects/" + wrong, b"these bytes", sha256=wrong)
        assert caught.value.key == "p/objects/" + wrong
        assert len(seen) == before


def test_an_answer_botocore_would_retry_is_retried_with_the_attempts_configured(
    moto_server: LocalS3,
) -> None:
    with FaultProxy(moto_server.port, kinds=frozenset({"PUT object"})) as proxy:
        bucket = moto_server.create_bucket()
        reports: list[str] = []
        client = built_client(moto_server, proxy.endpoint_url, on_retry=reports.append)
        repo = S3Repository.from_url(f"s3r://{bucket}/r", client=client)
        repo.put(b"teaches the route")
        assert lean_put(client).knows(bucket)  # type: ignore[union-attr]
        proxy.set_rates({"503-before": 1.0})
        before = proxy.kinds["PUT object"]
        with pytest.raises(UnavailableError):
            repo.store.put("r/k", b"never lands")
        assert proxy.kinds["PUT object"] - before == 3  # the direct attempt and two more
        assert reports == [
            "retrying PutObject (attempt 2 of 3) after HTTP 503 SlowDown",
            "retrying PutObject (attempt 3 of 3) after HTTP 503 SlowDown",
        ]
        proxy.set_rates({})
        before = proxy.kinds["PUT object"]
        digest = repo.put(b"lands at once")
        assert proxy.kinds["PUT object"] - before == 1
        assert repo.get(digest).read() == b"lands at once"


def test_with_one_attempt_allowed_a_failed_put_is_not_sent_again(
    moto_server: LocalS3,
) -> None:
    with FaultProxy(moto_server.port, kinds=frozenset({"PUT object"})) as proxy:
        bucket = moto_server.create_bucket()
        client = built_client(moto_server, proxy.endpoint_url, max_attempts=1)
        repo = S3Repository.from_url(f"s3r://{bucket}/one", client=client)
        repo.put(b"teaches the route")
        proxy.set_rates({"500-before": 1.0})
        before = proxy.kinds["PUT object"]
        with pytest.raises(UnavailableError):
            repo.store.put("one/k", b"never lands")
        assert proxy.kinds["PUT object"] - before == 1


def test_a_definite_refusal_is_raised_as_botocore_would_and_not_retried(
    moto_server: LocalS3,
) -> None:
    refusing = {"on": False}
    seen: Seen = []

    def refuse(method: str, path: str, headers: dict[str, str]) -> str | None:
        seen.append((method, path, headers))
        return "no writes today" if refusing["on"] and method == "PUT" else None

    with PolicyProxy(moto_server.port, refuse) as proxy:
        bucket = moto_server.create_bucket()
        repo = S3Repository.from_url(
            f"s3r://{bucket}/d", client=built_client(moto_server, proxy.endpoint_url)
        )
        repo.put(b"teaches the route")
        refusing["on"] = True
        before = len(object_puts(seen))
        with pytest.raises(PermissionDeniedError) as caught:
            repo.put(b"refused")
        assert caught.value.key == repo.layout.object_key(Digest.of(b"refused"))
        assert len(object_puts(seen)) - before == 1


def test_an_endpoint_that_is_not_s3_is_refused_on_every_put() -> None:
    web = WebServer(200)
    try:
        client = make_client(
            endpoint_url=f"http://127.0.0.1:{web.server.server_address[1]}",
            region="us-east-1",
            access_key_id="AKIAEXAMPLE",
            secret_access_key="not-a-secret-at-all",
        )
        repo = S3Repository.from_url("s3r://bucket/p", client=client)
        for _ in range(3):  # botocore's PUT teaches the route; the direct ones follow
            with pytest.raises(UnavailableError, match="does not look like S3"):
                repo.store.put(f"p/{os.urandom(4).hex()}", b"data")
        assert lean_put(client).knows("bucket")  # type: ignore[union-attr]
    finally:
        web.stop()


def test_a_client_a_caller_built_keeps_botocores_path(s3server: LocalS3) -> None:
    assert lean_put(s3server.client()) is None
