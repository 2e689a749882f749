"""Listing keys page by page, from a given key on: the one LIST loop of the library."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ._translate import translated

__all__ = ["common_prefix", "key_before", "list_pages"]


def list_pages(
    client: Any, bucket: str, prefix: str, start_after: str = "", page_size: int | None = None
) -> Iterator[tuple[float, dict[str, Any]]]:
    """(monotonic time the LIST was sent, its response) for each page, in key order.

    Stop consuming it to stop listing: each page is requested only when asked for.
    """
    args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if start_after:
        args["StartAfter"] = start_after
    if page_size is not None:
        args["MaxKeys"] = page_size
    while True:
        sent_at = time.monotonic()
        with translated(f"listing s3://{bucket}/{prefix}"):
            page = client.list_objects_v2(**args)
        yield sent_at, page
        if not page.get("IsTruncated"):
            return
        args["ContinuationToken"] = page["NextContinuationToken"]
        args.pop("StartAfter", None)


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
