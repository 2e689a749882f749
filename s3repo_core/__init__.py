"""s3repo: a content-addressed blob repository on Amazon S3.

Objects are stored by the SHA-256 of their bytes under ``<prefix>/objects/`` in a
bucket, byte-compatible with the Go original's layout. Open one with
``dial("s3r://bucket/prefix")``.
"""

from ._client import make_client, set_client
from ._collect import CollectionFailedError, CollectReport, DeleteFailure, shard_names
from ._dial import dial, register_scheme
from ._digest import Digest, File
from ._errors import (
    ConflictError,
    IntegrityError,
    InvalidArgumentError,
    NotExistError,
    NotSupportedError,
    PermissionDeniedError,
    RepositoryError,
    UnavailableError,
)
from ._options import StoreOptions
from ._s3repository import S3Repository
from .liveset import BloomLiveset, ExactLiveset, Liveset
from .manifest import (
    ManifestRow,
    read_liveset,
    read_liveset_with_info,
    read_manifest,
    write_manifest,
)

__all__ = [
    "BloomLiveset",
    "CollectReport",
    "CollectionFailedError",
    "ConflictError",
    "DeleteFailure",
    "Digest",
    "ExactLiveset",
    "File",
    "IntegrityError",
    "InvalidArgumentError",
    "Liveset",
    "ManifestRow",
    "NotExistError",
    "NotSupportedError",
    "PermissionDeniedError",
    "RepositoryError",
    "S3Repository",
    "StoreOptions",
    "UnavailableError",
    "dial",
    "make_client",
    "read_liveset",
    "read_liveset_with_info",
    "read_manifest",
    "register_scheme",
    "set_client",
    "shard_names",
    "write_manifest",
]
