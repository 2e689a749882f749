"""Bucket names, prefixes and the keys the repository lays out under them.

The layout is the Go original's, byte for byte::

    <prefix>/objects/sha256:<64 lowercase hex>   objects
    <prefix>/uploads/<16 lowercase hex>          in-progress uploads

and one addition of ours, which the original never reads:

    <prefix>/collections/<16 lowercase hex>      leases of running collections

with no leading slash, and no ``<prefix>/`` at all when the prefix is empty.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

import numpy as np

from ._digest import ALGORITHM, Digest
from ._errors import InvalidArgumentError
from .liveset import DIGEST_DTYPE

__all__ = ["Layout", "check_bucket", "clean_prefix"]

OBJECTS = "objects"
UPLOADS = "uploads"
COLLECTIONS = "collections"

# S3's rules for general purpose buckets: 3-63 characters of lowercase letters, digits,
# dots and hyphens, starting and ending with a letter or digit, no "..", not an IP.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_UPLOAD_TOKEN = re.compile(r"^[0-9a-f]{16}$")


def _hex_pair_table() -> np.ndarray:
    """Two lowercase hex digits, read as one native uint16, to their byte; else 0xFFFF.

    Decoding a pair per lookup validates and decodes 64 digits in 32 gathers.
    """
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    pairs = np.empty((256, 2), dtype=np.uint8)
    pairs[:, 0] = np.repeat(digits, 16)
    pairs[:, 1] = np.tile(digits, 16)
    table = np.full(1 << 16, 0xFFFF, dtype=np.uint16)
    table[pairs.view(np.uint16).reshape(-1)] = np.arange(256, dtype=np.uint16)
    return table


_HEX_PAIRS = _hex_pair_table()


def check_bucket(bucket: str) -> str:
    """``bucket`` if it is a valid S3 bucket name; InvalidArgumentError otherwise."""
    if (
        not isinstance(bucket, str)
        or not _BUCKET.match(bucket)
        or ".." in bucket
        or _IPV4.match(bucket)
    ):
        raise InvalidArgumentError(
            f"invalid bucket name {bucket!r}: 3-63 lowercase letters, digits, '.' or '-', "
            "starting and ending with a letter or digit"
        )
    return bucket


def clean_prefix(prefix: str) -> str:
    """``prefix`` without surrounding slashes; InvalidArgumentError for unusable ones."""
    if not isinstance(prefix, str):
        raise InvalidArgumentError(f"a prefix is a string, got {type(prefix).__name__}")
    cleaned = prefix.strip("/")
    parts = cleaned.split("/") if cleaned else []
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidArgumentError(
            f"invalid prefix {prefix!r}: no empty, '.' or '..' path segments"
        )
    if any(ord(c) < 32 or c in "\\#?" for c in cleaned):
        raise InvalidArgumentError(
            f"invalid prefix {prefix!r}: no control characters, '\\', '#' or '?'"
        )
    if len(cleaned.encode()) > 900:
        raise InvalidArgumentError(f"invalid prefix {prefix[:40]!r}...: longer than 900 bytes")
    return cleaned


class Layout:
    """Every key of one repository; nothing else builds keys."""

    def __init__(self, prefix: str) -> None:
        self.prefix = clean_prefix(prefix)
        self.root = f"{self.prefix}/" if self.prefix else ""
        self.objects = f"{self.root}{OBJECTS}/"
        self.uploads = f"{self.root}{UPLOADS}/"
        self.collections = f"{self.root}{COLLECTIONS}/"
        self._object_key_prefix = f"{self.objects}{ALGORITHM}:"

    def object_key(self, digest: Digest) -> str:
        return f"{self.objects}{digest}"

    def new_upload_key(self) -> str:
        return f"{self.uploads}{secrets.token_hex(8)}"

    def new_lease_key(self) -> str:
        return f"{self.collections}{secrets.token_hex(8)}"

    def objects_shard(self, hex_prefix: str) -> str:
        """The listing prefix of objects whose hex digest starts with ``hex_prefix``."""
        return f"{self._object_key_prefix}{hex_prefix}"

    def digest_of_key(self, key: str) -> Digest | None:
        """The digest an object key names, or None for a key that is not a valid one."""
        if not key.startswith(self.objects):
            return None
        try:
            return Digest.parse(key[len(self.objects) :])
        except InvalidArgumentError:
            return None

    def digests_of_keys(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """For listed ``keys``: which name a digest (a bool array), and those digests.

        The digests are a :data:`~s3repo_core.liveset.DIGEST_DTYPE` array, in key order.
        Collection classifies millions of keys, so the usual page (every key a digest's
        object key) is decoded in a few vectorised passes, other pages key by key.
        """
        raw = self._digests_of_digest_keys(keys)
        if raw is not None:
            return np.ones(len(keys), dtype=np.bool_), raw
        digests = [self.digest_of_key(key) for key in keys]
        valid = np.fromiter((d is not None for d in digests), dtype=np.bool_, count=len(keys))
        found = b"".join(d.raw for d in digests if d is not None)
        return valid, np.frombuffer(found, dtype=DIGEST_DTYPE)

    def _digests_of_digest_keys(self, keys: Sequence[str]) -> np.ndarray | None:
        """The digests of ``keys`` if every one is ``<objects>sha256:<64 lowercase hex>``.

        Joined with newlines, such keys are rows of one width: the prefix, 64 hex digits,
        a newline. The prefix and hex digits hold no newline, so if every row has that
        shape, the newlines are exactly the joins and each key is its row.
        """
        prefix = self._object_key_prefix.encode()
        width = len(prefix) + 65
        try:
            joined = "\n".join([*keys, ""]).encode()
        except (TypeError, UnicodeEncodeError):
            return None
        if not keys or len(joined) != len(keys) * width:
            return None
        rows = np.frombuffer(joined, dtype=np.uint8).reshape(-1, width)
        if not (
            (rows[:, -1] == ord("\n")).all()
            and (rows[:, : len(prefix)] == np.frombuffer(prefix, dtype=np.uint8)).all()
        ):
            return None
        decoded = np.take(_HEX_PAIRS, rows[:, len(prefix) : -1].view(np.uint16))
        if decoded.max() > 0xFF:  # a character that is not a lowercase hex digit
            return None
        return decoded.astype(np.uint8).reshape(-1).view(DIGEST_DTYPE)

    def is_upload_key(self, key: str) -> bool:
        return key.startswith(self.uploads) and bool(_UPLOAD_TOKEN.match(key[len(self.uploads) :]))
