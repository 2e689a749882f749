"""The shards of a repository's key space, as collection and verification split it.

A shard is a digest prefix of 1-4 lowercase hex digits (``3a`` is every object whose
digest starts so), ``other`` (keys under ``objects/`` that name no digest) or
``uploads``. Kept apart from collection so that naming shards costs no numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._errors import InvalidArgumentError

__all__ = [
    "HEX",
    "OTHER",
    "UPLOADS",
    "check_hex_shards",
    "check_shards",
    "digest_shards",
    "first_word_span",
    "shard_names",
]

HEX = "0123456789abcdef"
OTHER = "other"
UPLOADS = "uploads"


def digest_shards(width: int = 1) -> list[str]:
    """The ``16**width`` digest prefixes of ``width`` hex digits: every object's shard."""
    if not 1 <= width <= 4:
        raise InvalidArgumentError(f"shard width is 1 to 4 hex digits, got {width}")
    return [f"{n:0{width}x}" for n in range(16**width)]


def shard_names(width: int = 1) -> list[str]:
    """Every shard of a repository: ``16**width`` digest prefixes, 'other', 'uploads'."""
    return [*digest_shards(width), OTHER, UPLOADS]


def check_shards(shards: Sequence[str]) -> list[str]:
    """``shards`` as a list if each is a shard name, none overlaps another and none is
    named twice; InvalidArgumentError otherwise."""
    for shard in shards:
        if shard in (OTHER, UPLOADS):
            continue
        if not shard or len(shard) > 4 or not set(shard) <= set(HEX):
            raise InvalidArgumentError(
                f"invalid shard {shard!r}: 1-4 lowercase hex digits, 'other' or 'uploads'"
            )
    digest_shards = [s for s in shards if s not in (OTHER, UPLOADS)]
    for a in digest_shards:
        for b in digest_shards:
            if a != b and b.startswith(a):
                raise InvalidArgumentError(f"shards {a!r} and {b!r} overlap")
    if len(set(shards)) != len(shards):
        raise InvalidArgumentError("a shard is named twice")
    return list(shards)


def check_hex_shards(shards: Sequence[str]) -> list[str]:
    """``shards``, sorted, if each is a digest prefix (see ``check_shards``)."""
    named = [s for s in shards if s in (OTHER, UPLOADS)]
    if named:
        raise InvalidArgumentError(f"shard {named[0]!r} holds no objects: give hex digits")
    return sorted(check_shards(shards))


def first_word_span(shard: str) -> tuple[int, int]:
    """The digests of ``shard`` as a half-open range ``[low, high)`` of their first 64
    bits, read big-endian: how a liveset slice and a manifest's row groups are matched
    to a shard. ``other`` and ``uploads`` hold no digest: ``(0, 0)``."""
    if shard in (OTHER, UPLOADS):
        return (0, 0)
    check_shards([shard])
    shift = 64 - 4 * len(shard)
    prefix = int(shard, 16)
    return prefix << shift, (prefix + 1) << shift
