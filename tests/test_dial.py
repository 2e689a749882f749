"""Repository URLs, names, and configuration errors a user meets first."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from devkit.localserver import LocalS3
from s3repo_core import (
    Digest,
    InvalidArgumentError,
    NotSupportedError,
    PermissionDeniedError,
    S3Repository,
    UnavailableError,
    dial,
)


@pytest.mark.parametrize(
    ("url", "bucket", "prefix", "short"),
    [
        ("s3r://my-bucket/some/prefix", "my-bucket", "some/prefix", "s3:my-bucket/some/prefix"),
        ("s3r://my-bucket/some/prefix/", "my-bucket", "some/prefix", "s3:my-bucket/some/prefix"),
        ("s3r://my-bucket", "my-bucket", "", "s3:my-bucket"),
        ("s3r://my-bucket/", "my-bucket", "", "s3:my-bucket"),
        ("S3R://my.bucket.1/x", "my.bucket.1", "x", "s3:my.bucket.1/x"),
    ],
)
def test_dial_names_the_bucket_and_prefix(url: str, bucket: str, prefix: str, short: str) -> None:
    repo = dial(url)
    assert isinstance(repo, S3Repository)
    assert (repo.bucket, repo.prefix) == (bucket, prefix)
    assert repo.short_string() == short
    assert str(repo) == repo.url == f"s3r://{bucket}/{prefix}"
    assert dial(repo.url).url == repo.url


@pytest.mark.parametrize("url", ["s3://bucket/x", "ftp://h/x", "gs://bucket/x", "http://h/x"])
def test_unknown_schemes_are_not_supported(url: str) -> None:
    with pytest.raises(NotSupportedError, match=r"supported: file://, s3r://"):
        dial(url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "bucket/prefix",
        "s3r://",
        "s3r:///prefix",
        "s3r://Upper/x",
        "s3r://ab/x",
        "s3r://bucket_/x",
        "s3r://-bucket/x",
        "s3r://bucket../x",
        "s3r://192.168.1.1/x",
        "s3r://user@bucket/x",
        "s3r://bucket:9000/x",
        "s3r://bucket/x?versioning=1",
        "s3r://bucket/x#frag",
        "s3r://bucket/a//b",
        "s3r://bucket/a/../b",
        "s3r://bucket/a/./b",
    ],
)
def test_malformed_urls_are_invalid_arguments(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        dial(url)


def test_dial_takes_only_strings() -> None:
    with pytest.raises(InvalidArgumentError):
        dial(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [{"part_size": 1024}, {"concurrency": 0}, {"copy_threshold": 6 * 1024**3}],
)
def test_transfer_settings_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        S3Repository("bucket", **options)


def run_isolated(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with only ``env`` for AWS configuration."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=120
    )


STAT = f"""
import s3repo_core as s
try:
    s.dial("s3r://{{bucket}}/p").stat("{Digest.of(b"x")}")
except s.RepositoryError as e:
    print(type(e).__name__, e)
"""


def test_dial_uses_boto3_standard_configuration(moto_server: LocalS3) -> None:
    bucket = moto_server.create_bucket()
    moto_server.client().put_object(Bucket=bucket, Key=f"p/objects/{Digest.of(b'x')}", Body=b"x")
    code = f'import s3repo_core as s; print(s.dial("s3r://{bucket}/p").stat("{Digest.of(b"x")}"))'
    result = run_isolated(code, moto_server.environ())
    assert result.returncode == 0, result.stderr
    assert "size=1" in result.stdout


def test_missing_credentials_are_a_clear_error(moto_server: LocalS3) -> None:
    env = {"AWS_ENDPOINT_URL_S3": moto_server.endpoint_url, "AWS_DEFAULT_REGION": "us-east-1"}
    result = run_isolated(STAT.format(bucket="some-bucket"), env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(PermissionDeniedError.__name__)
    assert "credentials" in result.stdout


def test_an_unreachable_endpoint_is_a_clear_error(moto_server: LocalS3) -> None:
    env = dict(
        moto_server.environ(), AWS_ENDPOINT_URL_S3="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1"
    )
    result = run_isolated(STAT.format(bucket="some-bucket"), env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(UnavailableError.__name__)
    assert "127.0.0.1:9" in result.stdout
