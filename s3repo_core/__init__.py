"""s3repo: a content-addressed blob repository on Amazon S3.

Objects are stored by the SHA-256 of their bytes under ``<prefix>/objects/`` in a
bucket, byte-compatible with the Go original's layout. Open one with
``dial("s3r://bucket/prefix")``.
"""

from ._client import set_client
from ._dial import dial, register_scheme
from ._digest import Digest, File
from ._errors import (
    IntegrityError,
    InvalidArgumentError,
    NotExistError,
    NotSupportedError,
    PermissionDeniedError,
    RepositoryError,
    UnavailableError,
)
from ._s3repository import S3Repository

__all__ = [
    "Digest",
    "File",
    "IntegrityError",
    "InvalidArgumentError",
    "NotExistError",
    "NotSupportedError",
    "PermissionDeniedError",
    "RepositoryError",
    "S3Repository",
    "UnavailableError",
    "dial",
    "register_scheme",
    "set_client",
]
