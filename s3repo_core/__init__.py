"""s3repo: a content-addressed blob repository on Amazon S3.

Objects are stored by the SHA-256 of their bytes under ``<prefix>/objects/`` in a
bucket, byte-compatible with the Go original's layout. Open one with
``dial("s3r://bucket/prefix")``.

Importing the package is cheap: the value types, the errors and :func:`dial` are
imported with it, every other name on first use (PEP 562), so that ``s3repo stat``
loads neither pyarrow nor numpy, and botocore only once it opens an ``s3r://``
repository. ``tests/test_import_cost.py`` pins this.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from ._client import make_client, set_client
    from ._filerepository import FileRepository
    from ._liveset_slices import read_liveset, read_liveset_with_info
    from ._options import StoreOptions
    from ._planning import PlannedCollection, plan_collection, suggested_shard_width
    from ._report import CollectReport, DeleteFailure
    from ._repository import Repository
    from ._s3repository import S3Repository
    from ._shards import digest_shards, shard_names
    from ._stat import stat_many
    from ._tree import Tree, TreeEntry
    from ._verify import VerifyReport
    from .compaction import (
        RecordsCopy,
        compact_manifests,
        compact_records,
        copy_records,
        merge_manifests,
        records_modified_since,
    )
    from .inventory import Inventory, find_inventory, latest_inventory, read_inventory
    from .liveset import BloomLiveset, ExactLiveset, Liveset
    from .manifest import (
        ManifestInfo,
        ManifestRow,
        manifests_naming,
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

#: Where each name imported on first use is defined.
_LAZY: dict[str, str] = {
    "BloomLiveset": ".liveset",
    "CollectReport": "._report",
    "DeleteFailure": "._report",
    "ExactLiveset": ".liveset",
    "Inventory": ".inventory",
    "FileRepository": "._filerepository",
    "Liveset": ".liveset",
    "ManifestInfo": ".manifest",
    "ManifestRow": ".manifest",
    "PickleRefusedError": ".values",
    "PlannedCollection": "._planning",
    "Repository": "._repository",
    "RecordsCopy": ".compaction",
    "RetentionDecision": ".retention",
    "RetentionPolicy": ".retention",
    "S3Repository": "._s3repository",
    "StoreOptions": "._options",
    "StoredValue": ".values",
    "Tree": "._tree",
    "TreeEntry": "._tree",
    "ValueFormat": ".values",
    "VerifyReport": "._verify",
    "apply_retention": ".retention",
    "compact_manifests": ".compaction",
    "compact_records": ".compaction",
    "copy_records": ".compaction",
    "find_inventory": ".inventory",
    "latest_inventory": ".inventory",
    "decide_retention": ".retention",
    "digest_shards": "._shards",
    "load_value": ".values",
    "make_client": "._client",
    "manifests_naming": ".manifest",
    "merge_manifests": ".compaction",
    "records_modified_since": ".compaction",
    "plan_collection": "._planning",
    "suggested_shard_width": "._planning",
    "read_liveset": "._liveset_slices",
    "read_liveset_with_info": "._liveset_slices",
    "read_inventory": ".inventory",
    "read_manifest": ".manifest",
    "read_manifest_infos": ".manifest",
    "set_client": "._client",
    "shard_names": "._shards",
    "stat_many": "._stat",
    "store_value": ".values",
    "write_manifest": ".manifest",
    "write_record_manifest": ".records",
}

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
    "Inventory",
    "Liveset",
    "ManifestInfo",
    "ManifestRow",
    "NotExistError",
    "NotSupportedError",
    "PermissionDeniedError",
    "PickleRefusedError",
    "PlannedCollection",
    "RecordsCopy",
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
    "VerifyReport",
    "apply_retention",
    "compact_manifests",
    "compact_records",
    "copy_records",
    "decide_retention",
    "dial",
    "digest_shards",
    "find_inventory",
    "latest_inventory",
    "load_value",
    "make_client",
    "manifests_naming",
    "merge_manifests",
    "plan_collection",
    "read_inventory",
    "read_liveset",
    "read_liveset_with_info",
    "read_manifest",
    "read_manifest_infos",
    "records_modified_since",
    "register_scheme",
    "set_client",
    "shard_names",
    "stat_many",
    "store_value",
    "suggested_shard_width",
    "write_manifest",
    "write_record_manifest",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use, and keep the name (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
