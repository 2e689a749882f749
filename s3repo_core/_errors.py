"""The one exception tree of s3repo. Every error a caller can see is one of these::

    RepositoryError                  anything that went wrong in the repository
    ├── NotExistError                the object, bucket or upload does not exist
    ├── NotSupportedError            the URL scheme or operation is not supported
    ├── IntegrityError               bytes do not hash to their digest, or sizes disagree
    ├── InvalidArgumentError         a malformed digest, URL, bucket, prefix or argument
    ├── PermissionDeniedError        credentials are missing, wrong, or not allowed
    ├── UnavailableError             the store cannot be reached or keeps failing
    ├── ConflictError                another collection holds the shards asked for
    └── CollectionFailedError        a collection could not delete some keys (has .report)

botocore's exceptions are translated into these in exactly one place
(``s3repo_core._translate``) and chained with ``from``, so the cause stays visible in
a traceback while callers only ever catch ``RepositoryError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._digest import Digest
    from ._report import CollectReport

__all__ = [
    "CollectionFailedError",
    "ConflictError",
    "IntegrityError",
    "InvalidArgumentError",
    "NotExistError",
    "NotSupportedError",
    "PermissionDeniedError",
    "RepositoryError",
    "UnavailableError",
]


class RepositoryError(Exception):
    """Root of every error raised by s3repo.

    Besides its message, an error carries what it is about, where that is known: the
    store ``key``, the ``digest`` of the object, and the store's error ``code`` (an S3
    error code such as ``NoSuchKey``, or an errno name for a local directory).
    """

    def __init__(
        self,
        message: str = "",
        *,
        key: str | None = None,
        digest: Digest | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.key = key
        self.digest = digest
        self.code = code


class NotExistError(RepositoryError):
    """The object, bucket or upload does not exist."""


class NotSupportedError(RepositoryError):
    """The URL scheme or the operation is not supported by this repository."""


class IntegrityError(RepositoryError):
    """Bytes do not hash to the digest they are stored or claimed under."""


class InvalidArgumentError(RepositoryError, ValueError):
    """A malformed digest, URL, bucket name, prefix or other argument."""


class PermissionDeniedError(RepositoryError):
    """Credentials are missing, invalid, or lack permission for the request."""


class UnavailableError(RepositoryError):
    """The store could not be reached, or kept failing after retries."""


class ConflictError(RepositoryError):
    """Another operation holds what this one needs: a collection of the same shards."""


class CollectionFailedError(RepositoryError):
    """A collection finished but could not delete some keys; ``report`` says which."""

    def __init__(self, report: CollectReport) -> None:
        self.report = report
        shown = ", ".join(f"{f.key} ({f.code})" for f in report.errors[:5])
        super().__init__(
            f"collection of {report.repository} failed to delete {len(report.errors)} "
            f"keys: {shown}{' ...' if len(report.errors) > 5 else ''}",
            code=report.errors[0].code if report.errors else None,
        )
