"""The one place where botocore's exceptions become s3repo's.

Every call into botocore (and boto3's managed transfers) runs inside
:func:`translated`, so no botocore exception reaches a caller; the original stays
chained as ``__cause__``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.exceptions as bx
from botocore.parsers import ResponseParserError

from ._errors import (
    IntegrityError,
    InvalidArgumentError,
    NotExistError,
    NotSupportedError,
    PermissionDeniedError,
    RepositoryError,
    UnavailableError,
)

__all__ = [
    "ERROR_CODES",
    "NotS3Response",
    "check_response",
    "error_code",
    "translate",
    "translated",
]

#: S3 error codes (and bare HTTP statuses, which HEAD responses carry) by the error
#: they become. Codes not listed become a plain RepositoryError.
ERROR_CODES: dict[str, type[RepositoryError]] = {
    "404": NotExistError,
    "NotFound": NotExistError,
    "NoSuchKey": NotExistError,
    "NoSuchBucket": NotExistError,
    "NoSuchUpload": NotExistError,
    "400": InvalidArgumentError,
    "InvalidArgument": InvalidArgumentError,
    "InvalidBucketName": InvalidArgumentError,
    "KeyTooLongError": InvalidArgumentError,
    "InvalidRange": InvalidArgumentError,
    "EntityTooSmall": InvalidArgumentError,
    "EntityTooLarge": InvalidArgumentError,
    "InvalidPart": InvalidArgumentError,
    "InvalidPartOrder": InvalidArgumentError,
    # The bytes received do not match a checksum the request declared.
    "BadDigest": IntegrityError,
    "XAmzContentChecksumMismatch": IntegrityError,  # MinIO's BadDigest
    "XAmzContentSHA256Mismatch": IntegrityError,
    "403": PermissionDeniedError,
    "AccessDenied": PermissionDeniedError,
    "AllAccessDisabled": PermissionDeniedError,
    "InvalidAccessKeyId": PermissionDeniedError,
    "SignatureDoesNotMatch": PermissionDeniedError,
    "ExpiredToken": PermissionDeniedError,
    "InvalidToken": PermissionDeniedError,
    "AccountProblem": PermissionDeniedError,
    "501": NotSupportedError,
    "NotImplemented": NotSupportedError,
    "XNotImplemented": NotSupportedError,
    "MethodNotAllowed": NotSupportedError,
    "500": UnavailableError,
    "503": UnavailableError,
    "InternalError": UnavailableError,
    "ServiceUnavailable": UnavailableError,
    "SlowDown": UnavailableError,
    "RequestTimeout": UnavailableError,
}


class NotS3Response(bx.BotoCoreError):
    """A response that lacks what S3 always sends (raised by :func:`check_response`)."""

    fmt = "the endpoint does not look like S3: {detail}"


# Errors raised before or instead of an S3 response, most specific first.
_CLIENT_SIDE: tuple[tuple[type[Exception], type[RepositoryError], str], ...] = (
    (NotS3Response, UnavailableError, "unexpected response"),
    (ResponseParserError, UnavailableError, "the endpoint does not look like S3"),
    # The server's full-object checksum does not match the bytes received.
    (bx.FlexibleChecksumError, IntegrityError, "the bytes do not match the server's checksum"),
    (bx.ChecksumError, IntegrityError, "the bytes do not match the server's checksum"),
    (bx.NoCredentialsError, PermissionDeniedError, "no AWS credentials were found"),
    (bx.PartialCredentialsError, PermissionDeniedError, "AWS credentials are incomplete"),
    (bx.NoRegionError, InvalidArgumentError, "no AWS region is configured"),
    (bx.ProfileNotFound, InvalidArgumentError, "no such AWS profile"),
    (bx.ParamValidationError, InvalidArgumentError, "invalid request parameters"),
    (bx.InvalidEndpointConfigurationError, InvalidArgumentError, "invalid endpoint"),
    (bx.EndpointConnectionError, UnavailableError, "cannot connect to the S3 endpoint"),
    (bx.ConnectTimeoutError, UnavailableError, "timed out connecting to the S3 endpoint"),
    (bx.ReadTimeoutError, UnavailableError, "timed out reading from the S3 endpoint"),
    (bx.ConnectionClosedError, UnavailableError, "the S3 endpoint closed the connection"),
    (bx.ResponseStreamingError, UnavailableError, "the response stream broke off"),
    (bx.IncompleteReadError, UnavailableError, "the response ended early"),
    (bx.HTTPClientError, UnavailableError, "HTTP error talking to the S3 endpoint"),
    (bx.ConnectionError, UnavailableError, "connection error talking to the S3 endpoint"),
)


def error_code(exc: BaseException) -> str:
    """The S3 error code of a ClientError, or '' for anything else."""
    if isinstance(exc, bx.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def translate(exc: Exception, what: str, key: str | None = None) -> RepositoryError:
    """The s3repo error for a botocore (or urllib3) exception; ``what`` names the target.

    The error carries ``key`` and the S3 error code (or HTTP status) as fields.
    """
    error = _translate(exc, what)
    if error is not exc:
        if error.key is None:
            error.key = key
        if error.code is None and isinstance(exc, bx.ClientError):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            error.code = error_code(exc) or (str(status) if status else None)
    return error


def _is_boto3_error(exc: Exception) -> bool:
    """A boto3 error; boto3 is imported only for managed transfers, and none before."""
    module = sys.modules.get("boto3.exceptions")
    return module is not None and isinstance(exc, module.Boto3Error)


def _translate(exc: Exception, what: str) -> RepositoryError:
    if isinstance(exc, RepositoryError):
        return exc
    if _is_boto3_error(exc):
        # boto3's transfer manager wraps the botocore error that made it give up.
        cause = getattr(exc, "last_exception", None) or exc.__cause__ or exc.__context__
        if isinstance(cause, Exception) and cause is not exc:
            return _translate(cause, what)
        return RepositoryError(f"{what}: {exc}")
    if isinstance(exc, bx.ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or code
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if _not_s3_error(exc, code, status):
            return UnavailableError(
                f"{what}: the endpoint does not look like S3: it answered HTTP {status} "
                "without an S3 error"
            )
        kind = ERROR_CODES.get(code) or ERROR_CODES.get(str(status), RepositoryError)
        if kind is NotExistError and code == "NoSuchBucket":
            name = exc.response.get("Error", {}).get("BucketName")
            bucket = f"bucket {name!r}" if name else "bucket"
            return NotExistError(f"{what}: {bucket} does not exist")
        if kind is NotExistError:
            return NotExistError(f"{what}: does not exist")
        return kind(f"{what}: {code or status}: {message}")
    for cls, kind, text in _CLIENT_SIDE:
        if isinstance(exc, cls):
            return kind(f"{what}: {text}: {exc}")
    if isinstance(exc, bx.BotoCoreError):
        return RepositoryError(f"{what}: {exc}")
    # urllib3 errors can escape botocore while a response body is being read.
    if type(exc).__module__.startswith("urllib3"):
        return UnavailableError(f"{what}: {type(exc).__name__}: {exc}")
    return RepositoryError(f"{what}: {type(exc).__name__}: {exc}")


#: What S3 answers to HEAD (no body, so no error code) when nothing is wrong with it.
_HEAD_STATUSES = frozenset({"301", "304", "307", "400", "403", "404", "412", "500", "501", "503"})


def _not_s3_error(exc: bx.ClientError, code: str, status: object) -> bool:
    """An error answer S3 would never give: no S3 error code where S3 sends one.

    S3 answers every request with a body with an XML error naming its code; only HEAD
    responses, which have no body, carry a bare status, and only some statuses.
    """
    if not code:
        return True
    if not code.isdigit():
        return False
    if exc.operation_name.startswith("Head"):
        return code not in _HEAD_STATUSES
    return int(code) < 500 or code == "501"


#: Fields S3 always sends in a successful response, by operation.
_REQUIRED: dict[str, tuple[str, ...]] = {
    # Not the ETag: the JuiceFS gateway omits it while an object is being replaced.
    "HeadObject": ("LastModified",),
    "GetObject": ("LastModified",),
    "PutObject": ("ETag",),
    "CreateMultipartUpload": ("UploadId",),
    "UploadPart": ("ETag",),
    "UploadPartCopy": ("CopyPartResult",),
    "CompleteMultipartUpload": ("ETag",),
    "CopyObject": ("CopyObjectResult",),
    "ListObjectsV2": ("IsTruncated",),
    "ListMultipartUploads": ("IsTruncated",),
}


def check_response(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
    """botocore's after-call hook: a 2xx answer without what S3 always sends is refused.

    A plain web server answers 200 to everything; without this, puts would "succeed"
    and stat would return the size of an HTML page.
    """
    if not 200 <= http_response.status_code < 300:
        return
    missing = [name for name in _REQUIRED.get(model.name, ()) if name not in parsed]
    if model.name == "DeleteObjects" and b"DeleteResult" not in (http_response.content or b""):
        missing.append("DeleteResult")
    if missing:
        raise NotS3Response(
            detail=f"its {http_response.status_code} answer to {model.name} "
            f"has no {', '.join(missing)}"
        )


def _is_boundary_error(exc: Exception) -> bool:
    return (
        isinstance(exc, bx.BotoCoreError | bx.ClientError)
        or _is_boto3_error(exc)
        or type(exc).__module__.startswith("urllib3")
    )


@contextmanager
def translated(what: str, key: str | None = None) -> Iterator[None]:
    """Run a block of botocore calls; botocore errors leave it as RepositoryError."""
    try:
        yield
    except RepositoryError:
        raise
    except Exception as exc:
        if _is_boundary_error(exc):
            raise translate(exc, what, key) from exc
        raise
