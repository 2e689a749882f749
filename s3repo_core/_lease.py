"""Collection leases: how writers learn that a collection may be deleting right now.

A collection writes ``<prefix>/collections/<token>`` before it lists anything and
removes it after its last delete has been answered. A writer that finds an object
written or refreshed less than ``settle`` ago checks for leases; only if there is one
does it wait out ``settle`` and look again (see ``S3Repository`` for the guarantee).
Leases also keep two collections off the same shards at once. A lease not rewritten
for ``LEASE_TTL`` belongs to a collector that died and is ignored.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ._names import Layout
from ._translate import translated

__all__ = [
    "LEASE_TTL",
    "Lease",
    "any_lease",
    "is_expired",
    "list_leases",
    "read_leases",
    "write_lease",
]

LEASE_TTL = timedelta(hours=6)


@dataclass(frozen=True)
class Lease:
    key: str
    shards: frozenset[str]
    modified: datetime


def list_leases(client: Any, bucket: str, layout: Layout) -> list[tuple[str, datetime]]:
    """(key, last modified) of every lease, live or expired."""
    with translated(f"listing s3://{bucket}/{layout.collections}"):
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=layout.collections
        )
        return [
            (item["Key"], item["LastModified"]) for p in pages for item in p.get("Contents", [])
        ]


def read_leases(client: Any, bucket: str, listed: list[tuple[str, datetime]]) -> list[Lease]:
    """The leases ``listed`` with the shards each holds, oldest first."""
    result = []
    for key, modified in listed:
        with translated(f"s3://{bucket}/{key}"):
            try:
                body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
                shards = frozenset(json.loads(body).get("shards", []))
            except client.exceptions.NoSuchKey:
                continue  # released meanwhile
            except ValueError:
                shards = frozenset()
        result.append(Lease(key, shards, modified))
    return sorted(result, key=lambda lease: (lease.modified, lease.key))


def is_expired(modified: datetime, now: datetime) -> bool:
    """A lease not rewritten for LEASE_TTL belongs to a collector that died."""
    return now - modified > LEASE_TTL


def write_lease(client: Any, bucket: str, key: str, shards: list[str], threshold: datetime) -> None:
    body = json.dumps(
        {
            "shards": shards,
            "threshold": threshold.isoformat(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
    ).encode()
    with translated(f"writing the collection lease s3://{bucket}/{key}"):
        client.put_object(Bucket=bucket, Key=key, Body=body)


def any_lease(client: Any, bucket: str, layout: Layout, now: datetime) -> bool:
    """Whether any live lease exists: one LIST, for writers."""
    with translated(f"listing s3://{bucket}/{layout.collections}"):
        page = client.list_objects_v2(Bucket=bucket, Prefix=layout.collections)
    return any(not is_expired(item["LastModified"], now) for item in page.get("Contents", []))
