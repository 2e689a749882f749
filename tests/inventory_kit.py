"""S3 Inventory reports written as S3 writes them, from a bucket's listing, for tests.

moto does not produce inventories, so tests list the bucket and write the report in
AWS's documented layout and format: ``<prefix>/<source bucket>/<config id>/data/<uuid>``
files (CSV gzipped, every field quoted, no header, keys URL-encoded; or Parquet with
the lowercase column names) and ``<...>/<YYYY-MM-DDTHH-MMZ>/manifest.json`` naming
them with their MD5.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"


def listing(client: Any, bucket: str) -> list[dict[str, Any]]:
    """Every object of ``bucket`` as ListObjectsV2 says it (Key, Size, LastModified...)."""
    found: list[dict[str, Any]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.extend(page.get("Contents", []))
    return found


def _csv(bucket: str, rows: list[dict[str, Any]]) -> bytes:
    lines = []
    for row in rows:
        stamp = row["LastModified"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        fields = [
            bucket,
            quote(row["Key"], safe="/"),  # ':' becomes %3A, as S3's encoding does
            row.get("VersionId", ""),
            "true" if row.get("IsLatest", True) else "false",
            "true" if row.get("IsDeleteMarker", False) else "false",
            str(row["Size"]),
            stamp,
            row.get("ETag", "").strip('"'),
        ]
        lines.append(",".join(f'"{field}"' for field in fields))
    return gzip.compress(("\n".join(lines) + "\n").encode())


def _parquet(bucket: str, rows: list[dict[str, Any]]) -> bytes:
    table = pa.table(
        {
            "bucket": [bucket] * len(rows),
            "key": [row["Key"] for row in rows],
            "size": pa.array([row["Size"] for row in rows], pa.int64()),
            "last_modified_date": pa.array(
                [row["LastModified"] for row in rows], pa.timestamp("ms", tz="UTC")
            ),
            "is_latest": [row.get("IsLatest", True) for row in rows],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def write_inventory(
    client: Any,
    source: str,
    destination: str,
    rows: list[dict[str, Any]],
    *,
    file_format: str = "CSV",
    files: int = 2,
    at: datetime | None = None,
    prefix: str = "inventory",
    config_id: str = "daily",
) -> str:
    """Write ``rows`` (as :func:`listing` gives them) as a report of bucket ``source``
    into ``destination``, split over ``files`` data files; its manifest.json location."""
    at = at or datetime.now(UTC)
    base = f"{prefix}/{source}/{config_id}"
    entries = []
    for n in range(files):
        part = rows[n::files]
        data = _csv(source, part) if file_format == "CSV" else _parquet(source, part)
        suffix = "csv.gz" if file_format == "CSV" else "parquet"
        key = f"{base}/data/{uuid.uuid4()}.{suffix}"
        client.put_object(Bucket=destination, Key=key, Body=data)
        entries.append(
            {"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()}
        )
    manifest = {
        "sourceBucket": source,
        "destinationBucket": f"arn:aws:s3:::{destination}",
        "version": "2016-11-30",
        "creationTimestamp": str(int(at.timestamp() * 1000)),
        "fileFormat": file_format,
        "fileSchema": SCHEMA if file_format == "CSV" else "message s3.inventory { ... }",
        "files": entries,
    }
    key = f"{base}/{at.strftime('%Y-%m-%dT%H-%MZ')}/manifest.json"
    client.put_object(Bucket=destination, Key=key, Body=json.dumps(manifest).encode())
    return f"s3://{destination}/{key}"
