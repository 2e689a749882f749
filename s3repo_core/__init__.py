"""s3repo: a content-addressed blob repository on Amazon S3.

Objects are stored by the SHA-256 of their bytes under ``<prefix>/objects/`` in a
bucket, byte-compatible with the Go original's layout. Open one with
``dial("s3r://bucket/prefix")``.
"""

from ._client import make_client, set_client
from ._collect import shard_names
from ._dial import dial, register_scheme
from ._digest import Digest, File
from ._errors import (
    CollectionFailedError,
    ConflictError,
    IntegrityError,
    InvalidArgumentError,
    NotExistError,
    NotSupportedError,
    PermissionDeniedError,
    RepositoryError,
    UnavailableError,
)
from ._filerepository import FileRepository
from ._options import StoreOptions
from ._planning import PlannedCollection, plan_collection
from ._report import CollectReport, DeleteFailure
from ._repository import Repository
from ._s3repository import S3Repository
from ._stat import stat_many
from ._tree import Tree, TreeEntry
from .compaction import compact_manifests, merge_manifests
from .liveset import BloomLiveset, ExactLiveset, Liveset
from .manifest import (
    ManifestInfo,
    ManifestRow,
    manifests_naming,
    read_liveset,
    read_liveset_with_info,
    read_manifest,
    read_manifest_infos,
    write_manifest,
)
from .records import write_record_manifest
from .retention import RetentionDecision, RetentionPolicy, apply_retention, decide_retention
from .values import (
    PickleRefusedError,
    StoredValue,
    ValueFormat,
    load_value,
    store_value,
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
    "FileRepository",
    "IntegrityError",
    "InvalidArgumentError",
    "Liveset",
    "ManifestInfo",
    "ManifestRow",
    "NotExistError",
    "NotSupportedError",
    "PermissionDeniedError",
    "PickleRefusedError",
    "PlannedCollection",
    "Repository",
    "RepositoryError",
    "RetentionDecision",
    "RetentionPolicy",
    "S3Repository",
    "StoreOptions",
    "StoredValue",
    "Tree",
    "TreeEntry",
    "UnavailableError",
    "ValueFormat",
    "apply_retention",
    "compact_manifests",
    "decide_retention",
    "dial",
    "load_value",
    "make_client",
    "manifests_naming",
    "merge_manifests",
    "plan_collection",
    "read_liveset",
    "read_liveset_with_info",
    "read_manifest",
    "read_manifest_infos",
    "register_scheme",
    "set_client",
    "shard_names",
    "stat_many",
    "store_value",
    "write_manifest",
    "write_record_manifest",
]
