"""How a repository writes on AWS: encryption, storage class and the bucket's owner.

These are options of the repository, given as keyword arguments or as query
parameters of its URL, which ``repo.url`` gives back, so that ``dial(repo.url)``
writes the same way::

    s3r://bucket/prefix?sse=aws:kms&kms_key_id=alias/artifacts&bucket_key=true
    s3r://bucket/prefix?sse=AES256&storage_class=STANDARD_IA&owner=111122223333

Every write (put, multipart, the copy that publishes a stream, the refresh copy,
copies between repositories, and the collection lease) sends the encryption and
storage class headers, so a bucket policy that demands them refuses none of them.
The owner is sent as ``ExpectedBucketOwner`` on every request to the bucket (and as
``ExpectedSourceBucketOwner`` for a copy from it), so a mistyped bucket name that
happens to be someone else's is refused instead of read or written.
"""

from __future__ import annotations

import functools
import re
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from ._errors import InvalidArgumentError, NotSupportedError

__all__ = ["StoreOptions", "expect_owner", "expected_owner"]

SSE_MODES = ("AES256", "aws:kms")
_ACCOUNT = re.compile(r"[0-9]{12}")
_STORAGE_CLASS = re.compile(r"[A-Z][A-Z_]{1,40}")
#: URL query parameter of each option.
_QUERY = {
    "sse": "sse",
    "kms_key_id": "kms_key_id",
    "bucket_key": "bucket_key",
    "storage_class": "storage_class",
    "owner": "owner",
}


@dataclass(frozen=True)
class StoreOptions:
    """The AWS write options of one repository; all off by default."""

    sse: str | None = None
    kms_key_id: str | None = None
    bucket_key: bool | None = None
    storage_class: str | None = None
    owner: str | None = None

    def __post_init__(self) -> None:
        if self.sse is not None and self.sse not in SSE_MODES:
            raise InvalidArgumentError(f"sse is 'AES256' or 'aws:kms', got {self.sse!r}")
        if (self.kms_key_id or self.bucket_key is not None) and self.sse != "aws:kms":
            raise InvalidArgumentError("kms_key_id and bucket_key need sse='aws:kms'")
        if self.kms_key_id is not None and (
            not self.kms_key_id or any(ord(c) < 33 for c in self.kms_key_id)
        ):
            raise InvalidArgumentError(f"invalid kms_key_id {self.kms_key_id!r}")
        if self.storage_class is not None and not _STORAGE_CLASS.fullmatch(self.storage_class):
            raise InvalidArgumentError(
                f"invalid storage_class {self.storage_class!r}: e.g. STANDARD_IA"
            )
        if self.owner is not None and not _ACCOUNT.fullmatch(self.owner):
            raise InvalidArgumentError(
                f"invalid bucket owner {self.owner!r}: a 12-digit AWS account id"
            )

    @classmethod
    def from_query(cls, query: str) -> StoreOptions:
        """The options in an ``s3r://`` URL's query; InvalidArgumentError for others."""
        values: dict[str, Any] = {}
        by_param = {param: name for name, param in _QUERY.items()}
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError as exc:
            raise InvalidArgumentError(f"malformed repository URL query {query!r}") from exc
        for param, value in pairs:
            name = by_param.get(param)
            if name is None:
                raise InvalidArgumentError(
                    f"unknown repository URL option {param!r}; known: {', '.join(_QUERY)}"
                )
            if name in values:
                raise InvalidArgumentError(f"repository URL option {param!r} is given twice")
            if name == "bucket_key":
                if value not in ("true", "false"):
                    raise InvalidArgumentError(f"bucket_key is true or false, got {value!r}")
                values[name] = value == "true"
            else:
                values[name] = value
        return cls(**values)

    def query(self) -> str:
        """These options as an URL query (without '?'), in a fixed order; '' if none."""
        parts = []
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            parts.append(f"{_QUERY[item.name]}={quote(text, safe=':/')}")
        return "&".join(parts)

    def write_args(self) -> dict[str, Any]:
        """Arguments for PutObject, CreateMultipartUpload and CopyObject."""
        args: dict[str, Any] = {}
        if self.sse is not None:
            args["ServerSideEncryption"] = self.sse
        if self.kms_key_id is not None:
            args["SSEKMSKeyId"] = self.kms_key_id
        if self.bucket_key is not None:
            args["BucketKeyEnabled"] = self.bucket_key
        if self.storage_class is not None:
            args["StorageClass"] = self.storage_class
        return args

    def needs(self) -> set[str]:
        """The server features these options need (see LocalS3.lacks)."""
        return ({"sse"} if self.sse else set()) | (
            {"storage-class"} if self.storage_class else set()
        )

    @contextmanager
    def named_in_refusals(self) -> Iterator[None]:
        """Writes whose NotSupportedError names these options.

        A store that lacks encryption or a storage class (the JuiceFS gateway answers
        501 NotImplemented to any encryption header) cannot say which header it refused.
        """
        try:
            yield
        except NotSupportedError as exc:
            if not self.needs():
                raise
            raise NotSupportedError(
                f"{exc} (this repository writes with {self.query()}: "
                "the store may not support that)",
                key=exc.key,
                code=exc.code,
            ) from exc


# -- the bucket owner, on every request ----------------------------------------------

_owners: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()
_owners_lock = threading.Lock()


def expect_owner(client: Any, bucket: str, owner: str) -> None:
    """Send ``ExpectedBucketOwner=owner`` with every request of ``client`` to ``bucket``.

    The owner is the bucket's, whichever repository or manifest a request is for, so
    it is kept per client and bucket; a second, different owner is refused.
    """
    with _owners_lock:
        known = _owners.get(client)
        if known is None:
            known = _owners[client] = {}
            client.meta.events.register(
                "before-parameter-build.s3",
                functools.partial(_add_owner, known),
                unique_id="s3repo-bucket-owner",
            )
        if known.setdefault(bucket, owner) != owner:
            raise InvalidArgumentError(
                f"bucket {bucket!r} is expected to be owned by {known[bucket]}, not {owner}"
            )


def expected_owner(client: Any, bucket: str) -> str | None:
    """The owner :func:`expect_owner` set for ``client`` and ``bucket``, if any."""
    with _owners_lock:
        return _owners.get(client, {}).get(bucket)


def _add_owner(owners: dict[str, str], params: dict[str, Any], model: Any, **_: Any) -> None:
    members = model.input_shape.members if model.input_shape is not None else {}
    bucket = params.get("Bucket")
    if "ExpectedBucketOwner" in members and bucket in owners:
        params.setdefault("ExpectedBucketOwner", owners[bucket])
    if "ExpectedSourceBucketOwner" not in members:
        return
    source = params.get("CopySource")
    if isinstance(source, str):  # botocore may have written the dict as "bucket/key"
        source_bucket: object = unquote(source.lstrip("/").split("/", 1)[0])
    else:
        source_bucket = source.get("Bucket") if isinstance(source, dict) else None
    if isinstance(source_bucket, str) and source_bucket in owners:
        params.setdefault("ExpectedSourceBucketOwner", owners[source_bucket])
