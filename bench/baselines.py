"""The collection a user would write with boto3: the baseline of both collect cases."""

from __future__ import annotations

from collections.abc import Callable, Container
from datetime import datetime
from typing import Any


def list_and_delete(
    client: Any,
    bucket: str,
    prefix: str,
    keep: Container[str],
    threshold_of: Callable[[dict[str, Any]], datetime],
) -> tuple[int, int]:
    """List ``prefix`` with a paginator and delete, in sequential DeleteObjects of 1,000,
    each key whose name past ``prefix`` is not in ``keep`` and that was modified before
    ``threshold_of(first page)``; (keys scanned, keys deleted)."""
    scanned = deleted = 0
    skip = len(prefix)

    def delete(batch: list[dict[str, str]]) -> int:
        response = client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if response.get("Errors"):
            raise AssertionError(f"baseline delete failed: {response['Errors'][:3]}")
        return len(batch)

    batch: list[dict[str, str]] = []
    threshold: datetime | None = None
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        if threshold is None:
            threshold = threshold_of(page)
        for item in page.get("Contents", []):
            scanned += 1
            if item["Key"][skip:] not in keep and item["LastModified"] < threshold:
                batch.append({"Key": item["Key"]})
                if len(batch) == 1000:
                    deleted += delete(batch)
                    batch = []
    if batch:
        deleted += delete(batch)
    return scanned, deleted
