"""Key arithmetic for listings: where to start one, and what two keys share."""

from __future__ import annotations

__all__ = ["common_prefix", "key_before"]


def key_before(key: str) -> str:
    """A StartAfter for a listing that starts at ``key``: after every key below it.

    ``key`` less its last character, that character's predecessor and the greatest
    character: it keeps all but the last character of ``key``, so it still begins with
    any Prefix short of that (MinIO and the JuiceFS gateway refuse a StartAfter that
    does not begin with the Prefix). Empty if ``key`` is empty or ends in NUL.
    """
    if key[-1:] <= "\0":
        return ""
    return f"{key[:-1]}{chr(ord(key[-1]) - 1)}\U0010ffff"


def common_prefix(a: str, b: str) -> str:
    """The longest string both keys start with (characters, not path components)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return a[:n]
