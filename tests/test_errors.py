"""The exception tree and the one place botocore errors are translated."""

from __future__ import annotations

import botocore.exceptions as bx
import pytest

import s3repo_core
from s3repo_core import (
    IntegrityError,
    InvalidArgumentError,
    NotExistError,
    NotSupportedError,
    PermissionDeniedError,
    RepositoryError,
    UnavailableError,
)
from s3repo_core._translate import ERROR_CODES, translate, translated


def test_public_names_are_pinned() -> None:
    assert set(s3repo_core.__all__) >= {
        "Digest",
        "File",
        "RepositoryError",
        "NotExistError",
        "NotSupportedError",
        "IntegrityError",
        "InvalidArgumentError",
        "S3Repository",
        "dial",
        "set_client",
    }
    for name in s3repo_core.__all__:
        assert hasattr(s3repo_core, name), name


@pytest.mark.parametrize(
    "kind",
    [
        NotExistError,
        NotSupportedError,
        IntegrityError,
        InvalidArgumentError,
        PermissionDeniedError,
        UnavailableError,
    ],
)
def test_every_error_is_a_repository_error(kind: type[Exception]) -> None:
    assert issubclass(kind, RepositoryError)


def client_error(code: str, status: int = 400, operation: str = "") -> bx.ClientError:
    """An error as botocore raises it; a bare status code comes from a HEAD by default."""
    return bx.ClientError(
        {
            "Error": {"Code": code, "Message": f"message for {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation or ("HeadObject" if code.isdigit() else "GetObject"),
    )


@pytest.mark.parametrize(("code", "kind"), sorted(ERROR_CODES.items()))
def test_each_s3_error_code_has_its_error(code: str, kind: type[RepositoryError]) -> None:
    error = translate(client_error(code), "s3://b/k")
    assert type(error) is kind
    assert "s3://b/k" in str(error)


def test_an_unknown_code_falls_back_on_the_http_status() -> None:
    assert type(translate(client_error("Weird", 404), "x")) is NotExistError
    assert type(translate(client_error("Weird", 403), "x")) is PermissionDeniedError
    assert type(translate(client_error("Weird", 418), "x")) is RepositoryError


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (bx.NoCredentialsError(), PermissionDeniedError),
        (
            bx.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
            PermissionDeniedError,
        ),
        (bx.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), UnavailableError),
        (bx.ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), UnavailableError),
        (bx.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), UnavailableError),
        (bx.ResponseStreamingError(error="reset"), UnavailableError),
        (bx.ParamValidationError(report="bad"), InvalidArgumentError),
        (bx.NoRegionError(), InvalidArgumentError),
        (bx.DataNotFoundError(data_path="x"), RepositoryError),
    ],
)
def test_client_side_botocore_errors_are_translated(exc: Exception, kind: type) -> None:
    assert type(translate(exc, "x")) is kind


def test_translated_chains_the_original_and_lets_other_errors_pass() -> None:
    original = client_error("NoSuchKey", 404)
    with pytest.raises(NotExistError) as info, translated("s3://b/k"):
        raise original
    assert info.value.__cause__ is original
    with pytest.raises(KeyError), translated("x"):
        raise KeyError("not ours to translate")


def test_boto3_transfer_errors_are_translated_by_their_cause() -> None:
    from boto3.exceptions import S3UploadFailedError

    try:
        try:
            raise client_error("NoSuchBucket", 404)
        except bx.ClientError as cause:
            raise S3UploadFailedError("Failed to upload") from cause
    except S3UploadFailedError as wrapped:
        assert type(translate(wrapped, "x")) is NotExistError
    assert type(translate(S3UploadFailedError("no cause"), "x")) is RepositoryError


@pytest.mark.parametrize(
    ("code", "status", "operation"),
    [
        ("", 404, "GetObject"),  # an HTML 404 page: botocore finds no code in it
        ("", 403, "ListObjectsV2"),
        ("404", 404, "PutObject"),  # a bare status where S3 always sends its XML error
        ("501", 501, "ListObjectsV2"),
        ("405", 405, "HeadObject"),  # S3 never answers HEAD with 405
    ],
)
def test_an_error_s3_would_never_send_says_the_endpoint_is_not_s3(
    code: str, status: int, operation: str
) -> None:
    error = translate(client_error(code, status, operation), "s3://b/k")
    assert type(error) is UnavailableError
    assert "does not look like S3" in str(error)


def test_a_missing_bucket_is_named() -> None:
    exc = client_error("NoSuchBucket", 404)
    exc.response["Error"]["BucketName"] = "mirror"
    assert str(translate(exc, "copying s3://src/k")) == (
        "copying s3://src/k: bucket 'mirror' does not exist"
    )


def test_a_checksum_mismatch_is_an_integrity_error() -> None:
    exc = bx.FlexibleChecksumError(error_msg="Expected checksum x did not match calculated y")
    assert type(translate(exc, "s3://b/k")) is IntegrityError
