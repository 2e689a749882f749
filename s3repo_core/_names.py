"""Bucket names, prefixes and the keys the repository lays out under them.

The layout is the Go original's, byte for byte::

    <prefix>/objects/sha256:<64 lowercase hex>   objects
    <prefix>/uploads/<16 lowercase hex>          in-progress uploads

and additions of ours, which the original never reads:

    <prefix>/collections/<16 lowercase hex>      leases of running collections
    <prefix>/quarantine/sha256:<hex>/<UTC time>  corrupt objects moved aside by verify

with no leading slash, and no ``<prefix>/`` at all when the prefix is empty. The names
of these areas, and of those later versions add, are :data:`RESERVED_AREAS`: nothing
but the repository writes under them (see :func:`reserved_area_of`).
"""

from __future__ import annotations

import functools
import re
import secrets
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ._digest import ALGORITHM, Digest
from ._errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["RESERVED_AREAS", "Layout", "check_bucket", "clean_prefix", "reserved_area_of"]

OBJECTS = "objects"
UPLOADS = "uploads"
COLLECTIONS = "collections"
TOUCHES = "touches"
QUARANTINE = "quarantine"
#: The areas a repository keeps under its prefix, today's and those being added
#: (touch records, quarantine). The one list: anything that must stay out of a
#: repository's key space checks it.
RESERVED_AREAS: frozenset[str] = frozenset({OBJECTS, UPLOADS, COLLECTIONS, TOUCHES, QUARANTINE})

# S3's rules for general purpose buckets: 3-63 characters of lowercase letters, digits,
# dots and hyphens, starting and ending with a letter or digit, no "..", not an IP.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4 = re.compile(r"\d+\.\d+\.\d+\.\d+")
_UPLOAD_TOKEN = re.compile(r"[0-9a-f]{16}")
_TOUCH_TIME = "%Y%m%dT%H%M%S"
_TOUCH_KEY = re.compile(r"(\d{8}T\d{6})\.(\d{3})Z-[0-9a-f]{16}")
_QUARANTINE_TIME = re.compile(r"\d{8}T\d{6}\.\d{3}Z")


@functools.cache
def _hex_pairs() -> np.ndarray:
    """Two lowercase hex digits, read as one native uint16, to their byte; else 0xFFFF.

    Decoding a pair per lookup validates and decodes 64 digits in 32 gathers. Built on
    first use: only collection decodes keys in bulk, and numpy is imported for it.
    """
    import numpy as np

    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    pairs = np.empty((256, 2), dtype=np.uint8)
    pairs[:, 0] = np.repeat(digits, 16)
    pairs[:, 1] = np.tile(digits, 16)
    table = np.full(1 << 16, 0xFFFF, dtype=np.uint16)
    table[pairs.view(np.uint16).reshape(-1)] = np.arange(256, dtype=np.uint16)
    return table


def check_bucket(bucket: str) -> str:
    """``bucket`` if it is a valid S3 bucket name; InvalidArgumentError otherwise."""
    if (
        not isinstance(bucket, str)
        or not _BUCKET.fullmatch(bucket)
        or ".." in bucket
        or _IPV4.fullmatch(bucket)
    ):
        raise InvalidArgumentError(
            f"invalid bucket name {bucket!r}: 3-63 lowercase letters, digits, '.' or '-', "
            "starting and ending with a letter or digit"
        )
    return bucket


def _is_noncharacter(code: int) -> bool:
    """U+FDD0..U+FDEF and the last two code points of every plane (U+FFFE, U+FFFF, ...)."""
    return 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE


def _unusable(char: str) -> str | None:
    """Why ``char`` may not be part of a prefix, or None if it may."""
    code = ord(char)
    if char in "\\#?":
        return f"{char!r}"
    category = unicodedata.category(char)
    if category == "Cc":  # C0 controls, DEL, C1 controls
        return f"the control character U+{code:04X}"
    if category == "Cs":
        return f"the lone surrogate U+{code:04X}, which is not text (a byte that is not UTF-8?)"
    if category in ("Cf", "Zl", "Zp"):  # bidi controls, zero-width characters, separators
        return f"the invisible format character U+{code:04X} ({unicodedata.name(char, '?')})"
    if _is_noncharacter(code):
        return f"the noncharacter U+{code:04X}"
    return None


def clean_prefix(prefix: str) -> str:
    """``prefix`` without surrounding slashes; InvalidArgumentError for unusable ones.

    A prefix is at most 900 bytes of UTF-8 in ``/``-separated segments, none empty,
    ``.`` or ``..``. Refused anywhere in it: ``\\``, ``#`` and ``?`` (URLs), control
    characters (C0, DEL, C1), surrogates (which UTF-8 cannot encode: they stand for
    bytes that were not UTF-8), invisible format characters (Unicode category Cf, such
    as the bidi override U+202E, which make a key read as another; and the line and
    paragraph separators) and noncharacters (U+FDD0..U+FDEF, U+FFFE, U+FFFF, ...):
    XML 1.0 cannot carry controls and noncharacters, so a LIST, and so collection,
    cannot see keys that hold them.
    """
    if not isinstance(prefix, str):
        raise InvalidArgumentError(f"a prefix is a string, got {type(prefix).__name__}")
    cleaned = prefix.strip("/")
    parts = cleaned.split("/") if cleaned else []
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidArgumentError(
            f"invalid prefix {prefix!r}: no empty, '.' or '..' path segments"
        )
    for char in cleaned:
        why = _unusable(char)
        if why is not None:
            raise InvalidArgumentError(f"invalid prefix {prefix!r}: it holds {why}")
    if len(cleaned.encode()) > 900:
        raise InvalidArgumentError(f"invalid prefix {prefix[:40]!r}...: longer than 900 bytes")
    return cleaned


def reserved_area_of(key: str) -> str | None:
    """The reserved area ``key`` lies in, for some repository prefix; else None.

    A key lies in one when a segment of it other than the last (the key split at
    ``/``) is one of :data:`RESERVED_AREAS`: ``<any prefix>/objects/<anything>`` is
    the objects area of the repository at that prefix. Only whole segments count and
    case matters (S3 keys are case-sensitive), so ``objects-2024/x``, ``my-uploads/x``,
    ``Objects/x`` and a file named ``objects`` are not in one.
    """
    segments = key.split("/")[:-1]
    return next((segment for segment in segments if segment in RESERVED_AREAS), None)


class Layout:
    """Every key of one repository; nothing else builds keys."""

    def __init__(self, prefix: str) -> None:
        self.prefix = clean_prefix(prefix)
        self.root = f"{self.prefix}/" if self.prefix else ""
        self.objects = f"{self.root}{OBJECTS}/"
        self.uploads = f"{self.root}{UPLOADS}/"
        self.collections = f"{self.root}{COLLECTIONS}/"
        self.touches = f"{self.root}{TOUCHES}/"
        #: Corrupt objects moved aside by ``verify(quarantine=True)``; collection purges
        #: them after the grace.
        self.quarantine = f"{self.root}{QUARANTINE}/"
        #: Says which collection protocol the repository's collectors follow.
        self.protocol = f"{self.root}protocol.json"
        self._object_key_prefix = f"{self.objects}{ALGORITHM}:"

    def object_key(self, digest: Digest) -> str:
        return f"{self.objects}{digest}"

    def new_upload_key(self) -> str:
        return f"{self.uploads}{secrets.token_hex(8)}"

    def new_lease_key(self) -> str:
        return f"{self.collections}{secrets.token_hex(8)}"

    def new_touch_key(self, at: datetime) -> str:
        """A touch record's key: ``at`` (the store's clock, to the millisecond), a token."""
        return f"{self.touch_key_floor(at)}-{secrets.token_hex(8)}"

    def touch_key_floor(self, at: datetime) -> str:
        """Sorts after every touch record key of a time before ``at``, before any later."""
        stamp = at.astimezone(UTC).strftime(_TOUCH_TIME)
        return f"{self.touches}{stamp}.{at.microsecond // 1000:03d}Z"

    def new_quarantine_key(self, digest: Digest, at: datetime) -> str:
        """Where a corrupt object moves: ``quarantine/<digest>/<UTC time, to the ms>``."""
        stamp = at.astimezone(UTC).strftime(_TOUCH_TIME)
        return f"{self.quarantine}{digest}/{stamp}.{at.microsecond // 1000:03d}Z"

    def is_quarantine_key(self, key: str) -> bool:
        """Whether ``key`` is one :meth:`new_quarantine_key` makes (not, say, the empty
        directory ``quarantine/<digest>/`` a gateway on a file system lists)."""
        if not key.startswith(self.quarantine):
            return False
        digest, slash, stamp = key[len(self.quarantine) :].partition("/")
        if not slash or not _QUARANTINE_TIME.fullmatch(stamp):
            return False
        try:
            Digest.parse(digest)
        except InvalidArgumentError:
            return False
        return True

    def time_of_touch_key(self, key: str) -> datetime | None:
        """The time a touch record's key names; None for a key that is not one."""
        if not key.startswith(self.touches):
            return None
        match = _TOUCH_KEY.fullmatch(key[len(self.touches) :])
        if match is None:
            return None
        try:
            when = datetime.strptime(match[1], _TOUCH_TIME).replace(tzinfo=UTC)
        except ValueError:
            return None
        return when.replace(microsecond=int(match[2]) * 1000)

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
        import numpy as np

        from .liveset import DIGEST_DTYPE

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
        import numpy as np

        from .liveset import DIGEST_DTYPE

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
        decoded = np.take(_hex_pairs(), rows[:, len(prefix) : -1].view(np.uint16))
        if decoded.max() > 0xFF:  # a character that is not a lowercase hex digit
            return None
        return decoded.astype(np.uint8).reshape(-1).view(DIGEST_DTYPE)

    def is_upload_key(self, key: str) -> bool:
        return key.startswith(self.uploads) and bool(
            _UPLOAD_TOKEN.fullmatch(key[len(self.uploads) :])
        )
