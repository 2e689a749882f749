"""Content digests and the File value: parsed once at the edge, passed as values after."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ._errors import InvalidArgumentError

__all__ = ["ALGORITHM", "Digest", "File"]

ALGORITHM = "sha256"
_HEX_LENGTH = 64
_HEX_DIGITS = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A SHA-256 digest; ``str(d)`` is ``sha256:<64 lowercase hex>``, the form keys use.

    Build one with :meth:`parse` (text from outside), :meth:`from_bytes` (32 raw bytes)
    or :meth:`of` (hash some bytes). The raw 32 bytes are the value, so digests compare,
    hash and sort cheaply.
    """

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != hashlib.sha256().digest_size:
            raise InvalidArgumentError(f"a digest is 32 raw bytes, got {self.raw!r:.80}")

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``sha256:<64 lowercase hex>``; raises InvalidArgumentError otherwise."""
        if not isinstance(text, str):
            raise InvalidArgumentError(f"a digest is a string, got {type(text).__name__}")
        algorithm, sep, hex_part = text.partition(":")
        if not sep or algorithm != ALGORITHM:
            raise InvalidArgumentError(
                f"invalid digest {text!r:.100}: expected '{ALGORITHM}:' followed by 64 "
                "lowercase hex digits"
            )
        if len(hex_part) != _HEX_LENGTH or not _HEX_DIGITS.issuperset(hex_part):
            raise InvalidArgumentError(
                f"invalid digest {text!r:.100}: expected 64 lowercase hex digits after "
                f"'{ALGORITHM}:'"
            )
        return cls(bytes.fromhex(hex_part))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Digest:
        """Wrap 32 raw digest bytes."""
        return cls(bytes(raw))

    @classmethod
    def of(cls, data: bytes | bytearray | memoryview) -> Digest:
        """The digest of ``data``."""
        return cls(hashlib.sha256(data).digest())

    @property
    def hex(self) -> str:
        """The 64 lowercase hex digits."""
        return self.raw.hex()

    def __str__(self) -> str:
        return f"{ALGORITHM}:{self.raw.hex()}"

    def __repr__(self) -> str:
        return f"Digest('{self}')"


@dataclass(frozen=True, slots=True)
class File:
    """An object's identity: its digest and its size in bytes."""

    digest: Digest
    size: int

    def __post_init__(self) -> None:
        if not isinstance(self.digest, Digest):
            raise InvalidArgumentError(
                f"File.digest must be a Digest, got {type(self.digest).__name__}"
            )
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise InvalidArgumentError(f"File.size must be an int >= 0, got {self.size!r}")
