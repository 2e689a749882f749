"""AWS write options: encryption, storage class, bucket owner, and the digest as metadata.

moto records the encryption and storage class of what it stores; it and the JuiceFS
gateway ignore ``ExpectedBucketOwner`` and bucket policies, which ``PolicyProxy``
enforces as AWS would. The JuiceFS gateway answers 501 to every encryption header.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from devkit.localserver import LocalS3
from s3repo_core import (
    Digest,
    File,
    InvalidArgumentError,
    NotSupportedError,
    PermissionDeniedError,
    S3Repository,
    dial,
    set_client,
)
from s3repo_core._options import StoreOptions
from s3repo_core.liveset import ExactLiveset

from policy_proxy import PolicyProxy

MiB = 1024 * 1024
KMS = {"sse": "aws:kms", "kms_key_id": "alias/artifacts", "bucket_key": True}
OWNER = "111122223333"
WINDOWS: dict[str, Any] = {
    "part_size": 5 * MiB,
    "lookahead": 5 * MiB,  # a longer stream goes by uploads/ and a publishing copy
    "refresh_window": timedelta(milliseconds=200),
    "settle": timedelta(milliseconds=400),
    "grace": timedelta(seconds=2, milliseconds=700),
}


class Unseekable(io.RawIOBase):
    """A pipe-like stream: put cannot learn its length or read it twice."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)


def test_options_round_trip_through_the_url() -> None:
    url = (
        "s3r://bucket/p?sse=aws:kms&kms_key_id=alias/artifacts&bucket_key=true"
        "&storage_class=STANDARD_IA&owner=111122223333"
    )
    repo = dial(url)
    assert repo.url == url
    assert repo.options == StoreOptions(**KMS, storage_class="STANDARD_IA", owner=OWNER)
    assert dial(repo.url).options == repo.options
    assert dial("s3r://bucket/p").url == "s3r://bucket/p"
    for bad in (
        "s3r://bucket/p?sse=des",
        "s3r://bucket/p?colour=red",
        "s3r://bucket/p?kms_key_id=k",  # needs sse=aws:kms
        "s3r://bucket/p?sse=AES256&sse=AES256",
        "s3r://bucket/p?sse=aws:kms&bucket_key=yes",
        "s3r://bucket/p?owner=12",
        "s3r://bucket/p?storage_class=glacier%0A",
    ):
        with pytest.raises(InvalidArgumentError):
            dial(bad)


@pytest.fixture
def writes(client: Any) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The parameters of every write request the client sends, in order."""
    seen: list[tuple[str, dict[str, Any]]] = []
    written = ("PutObject", "CreateMultipartUpload", "CopyObject")

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in written:
            seen.append((model.name, dict(params)))

    client.meta.events.register("before-parameter-build.s3", record)
    yield seen
    client.meta.events.unregister("before-parameter-build.s3", record)


def every_write_path(repo: S3Repository, mirror: S3Repository, tmp_path: Path) -> list[Digest]:
    """put (small, multipart, a long stream published by copy), put_file, put_files,
    a refresh, write_to (one copy and one in parts) and a collection (its lease)."""
    small = b"small object"
    large = bytes(range(256)) * (12 * MiB // 256)
    stream = large[::-1]
    digests = [repo.put(small), repo.put(large), repo.put(Unseekable(stream))]
    data = b"put with put_file"
    repo.put_file(File(Digest.of(data), len(data)), data)
    digests.append(Digest.of(data))
    (tmp_path / "f").write_bytes(b"put with put_files")
    digests.append(repo.put_files([tmp_path / "f"])[0].digest)
    time.sleep(1.5)  # past refresh_window: the next put refreshes with a self-copy
    repo.put(small)
    repo.write_to(digests[0], mirror.url)
    repo.write_to(digests[1], mirror.url)  # above copy_threshold: copied in parts
    repo.collect(ExactLiveset(digests), dry_run=False)
    return digests


@pytest.mark.parametrize(
    "options", [KMS, {"sse": "AES256", "storage_class": "STANDARD_IA"}], ids=["kms", "s3"]
)
def test_every_write_sends_the_options_and_keeps_them(
    s3server: LocalS3,
    bucket: str,
    client: Any,
    writes: list[tuple[str, dict[str, Any]]],
    tmp_path: Path,
    options: dict[str, Any],
) -> None:
    store = StoreOptions(**options)
    if store.needs() & s3server.lacks:
        pytest.skip(f"{s3server.name} lacks {sorted(store.needs() & s3server.lacks)}")
    repo = S3Repository(bucket, "r", options=store, copy_threshold=6 * MiB, **WINDOWS)
    mirror = S3Repository(bucket, "mirror", options=store, copy_threshold=6 * MiB, **WINDOWS)
    digests = every_write_path(repo, mirror, tmp_path)
    wanted = store.write_args()
    assert {name for name, _ in writes} == {"PutObject", "CreateMultipartUpload", "CopyObject"}
    for name, params in writes:
        assert {k: params.get(k) for k in wanted} == wanted, (name, params["Key"])
    assert any("/collections/" in p["Key"] for _, p in writes)  # the lease too
    for target in (repo, mirror):
        for digest in digests if target is repo else digests[:2]:
            head = client.head_object(Bucket=bucket, Key=target.layout.object_key(digest))
            assert head["ServerSideEncryption"] == store.sse
            if store.kms_key_id:
                assert head["SSEKMSKeyId"].endswith(store.kms_key_id)
            if store.storage_class:
                assert head["StorageClass"] == store.storage_class
            assert head["Metadata"]["content-sha256"] == digest.hex


def test_every_object_carries_its_digest_as_metadata(
    s3server: LocalS3, repo: S3Repository, client: Any, tmp_path: Path
) -> None:
    """Current reflow reads ``x-amz-meta-content-sha256`` as an object's hash."""
    mirror = S3Repository(repo.bucket, "mirror", copy_threshold=6 * MiB, **WINDOWS)
    short = S3Repository(repo.bucket, repo.prefix, copy_threshold=6 * MiB, **WINDOWS)
    digests = every_write_path(short, mirror, tmp_path)
    for target, kept in ((short, digests), (mirror, digests[:2])):
        for digest in kept:
            head = client.head_object(Bucket=repo.bucket, Key=target.layout.object_key(digest))
            assert head["Metadata"].get("content-sha256") == digest.hex


def test_an_option_the_store_lacks_is_named(s3server: LocalS3, bucket: str) -> None:
    if "sse" not in s3server.lacks:
        pytest.skip(f"{s3server.name} supports server-side encryption")
    repo = S3Repository(bucket, "r", options=StoreOptions(sse="AES256"))
    with pytest.raises(NotSupportedError, match="sse=AES256"):
        repo.put(b"encrypted, or not at all")
    assert repo.client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def _owned_by(owner: str) -> Any:
    def refuse(method: str, path: str, headers: dict[str, str]) -> str | None:
        given = headers.get("x-amz-expected-bucket-owner")
        if given != owner:
            return f"expected bucket owner {given!r} is not the bucket's"
        source = headers.get("x-amz-copy-source")
        if source and headers.get("x-amz-source-expected-bucket-owner") != owner:
            return "expected source bucket owner is not the source bucket's"
        return None

    return refuse


def _demands_encryption(method: str, path: str, headers: dict[str, str]) -> str | None:
    is_write = method == "PUT" and "partNumber=" not in path
    is_create = method == "POST" and path.endswith("?uploads")
    if (is_write or is_create) and "x-amz-server-side-encryption" not in headers:
        return "the bucket policy denies writes without server-side encryption"
    return None


def test_a_bucket_owned_by_someone_else_is_refused(moto_server: LocalS3, tmp_path: Path) -> None:
    bucket = moto_server.create_bucket()
    with PolicyProxy(moto_server.port, _owned_by(OWNER)) as proxy:
        set_client(moto_server.client(endpoint_url=proxy.endpoint_url), bucket=bucket)
        try:
            ours = S3Repository(bucket, "r", options=StoreOptions(owner=OWNER), **WINDOWS)
            mirror = S3Repository(bucket, "m", options=StoreOptions(owner=OWNER), **WINDOWS)
            every_write_path(ours, mirror, tmp_path)
            assert ours.stat(Digest.of(b"small object")).size == len(b"small object")
            assert proxy.refused == []
            for other in (None, "444455556666"):
                repo = S3Repository(
                    bucket,
                    "r",
                    client=moto_server.client(endpoint_url=proxy.endpoint_url),
                    options=StoreOptions(owner=other),
                )
                with pytest.raises(PermissionDeniedError):
                    repo.put(b"small object")
            # The owner is the bucket's: one client cannot expect two.
            with pytest.raises(InvalidArgumentError, match="owned by"):
                S3Repository(bucket, "x", options=StoreOptions(owner="444455556666")).stat(
                    Digest.of(b"small object")
                )
        finally:
            set_client(None, bucket=bucket)


def test_a_policy_that_demands_encryption_refuses_no_write(
    moto_server: LocalS3, tmp_path: Path
) -> None:
    bucket = moto_server.create_bucket()
    with PolicyProxy(moto_server.port, _demands_encryption) as proxy:
        set_client(moto_server.client(endpoint_url=proxy.endpoint_url), bucket=bucket)
        try:
            store = StoreOptions(sse="AES256")
            repo = S3Repository(bucket, "r", options=store, copy_threshold=6 * MiB, **WINDOWS)
            mirror = S3Repository(bucket, "m", options=store, copy_threshold=6 * MiB, **WINDOWS)
            every_write_path(repo, mirror, tmp_path)
            assert proxy.refused == []
            with pytest.raises(PermissionDeniedError):
                S3Repository(bucket, "plain").put(b"unencrypted")
        finally:
            set_client(None, bucket=bucket)


def test_the_dagster_resource_passes_the_options_on() -> None:
    from repo_pipelines import S3RepoResource

    resource = S3RepoResource(
        bucket="bucket",
        prefix="p",
        sse="aws:kms",
        kms_key_id="alias/artifacts",
        bucket_key=True,
        storage_class="STANDARD_IA",
        expected_bucket_owner=OWNER,
        endpoint_url="http://127.0.0.1:1",
    )
    repo = resource.repository()
    assert repo.options == StoreOptions(**KMS, storage_class="STANDARD_IA", owner=OWNER)
    assert dial(repo.url).options == repo.options
    with pytest.raises(InvalidArgumentError):
        S3RepoResource(bucket="bucket", sse="rot13").repository()
