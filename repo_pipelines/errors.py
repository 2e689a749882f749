"""Repository errors become Dagster failures a person can act on.

A step that fails on a missing digest, a bad manifest, an unreachable endpoint,
wrong credentials or an unreadable local file says so in one line, with a hint, and
without the botocore trace (s3repo_core has already translated it; the cause is
dropped from the failure).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import Failure

from s3repo_core import (
    CollectionFailedError,
    ConflictError,
    IntegrityError,
    InvalidArgumentError,
    NotExistError,
    PermissionDeniedError,
    RepositoryError,
    UnavailableError,
)

__all__ = ["HINTS", "LOCAL_HINT", "repository_step"]

#: What to check, by the kind of error; the most specific class first.
HINTS: tuple[tuple[type[RepositoryError], str], ...] = (
    (NotExistError, "check the digest, the bucket and the prefix (or manifest location)"),
    (
        PermissionDeniedError,
        "check the credentials: S3REPO_ACCESS_KEY_ID / S3REPO_SECRET_ACCESS_KEY, "
        "the profile, or boto3's AWS_* variables, and the bucket policy",
    ),
    (UnavailableError, "check the endpoint URL and that the S3 service is reachable"),
    (IntegrityError, "the stored bytes do not match their digest: do not use this object"),
    (InvalidArgumentError, "check the op's config (digests are sha256:<64 lowercase hex>)"),
    (ConflictError, "another collection is running; retry when it has finished"),
    (CollectionFailedError, "the server refused some deletions; the report lists them"),
)


LOCAL_HINT = "check the local path, that it exists, and its permissions"


def hint_for(error: RepositoryError) -> str:
    for kind, hint in HINTS:
        if isinstance(error, kind):
            return hint
    return "see the message"


@contextmanager
def repository_step(what: str) -> Iterator[None]:
    """Run a step's repository calls; a RepositoryError fails the step with a clear message."""
    try:
        yield
    except RepositoryError as error:
        raise Failure(
            description=f"{what} failed: {error}",
            metadata={"error": type(error).__name__, "hint": hint_for(error)},
            allow_retries=isinstance(error, UnavailableError | ConflictError),
        ) from None
    except OSError as error:  # a local file or directory the step reads or writes
        raise Failure(
            description=f"{what} failed: {error}",
            metadata={"error": type(error).__name__, "hint": LOCAL_HINT},
        ) from None
