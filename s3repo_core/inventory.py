"""S3 Inventory reports as a collection's listing, for buckets too large to LIST.

Listing 100 million keys takes at least 100,000 LIST requests, one after another within
a prefix (each page needs the one before). S3 Inventory writes the same list to files,
daily or weekly. :func:`read_inventory` reads one report's ``manifest.json`` in AWS's
documented format (``fileFormat`` CSV, Parquet or ORC; CSV files gzipped, without a
header, their keys URL-encoded; the columns as ``fileSchema`` names them), and the
report is then a collection's listing::

    inventory = read_inventory("s3://logs/inventory/my-bucket/daily/2026-12-01T01-00Z/manifest.json")
    repo.collect(liveset, listing=inventory)

**An inventory proposes, it never decides.** It is up to 48 hours old, so a candidate
from it is looked at again right before its delete, by a LIST of the key range of the
page it came in (the check every delete decided too long ago gets, within the settle
window): a key gone since is skipped, one modified since is kept, and touch records
are read as for any delete. Keys written after the report are not in it and not
touched. The write guarantee holds unchanged. What inventories save is the chain: the
ranges are known up front, so their LISTs run in parallel, and a range with no
candidate costs none. A dry run counts what the inventory proposes.

Each shard reads every data file of the report and keeps its own keys, sorted, in pages
of 1,000: a shard's memory is its keys. The files are checked against the MD5 the
manifest gives; a file that fails, or any other fault, raises: the collection stops.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

import pyarrow as pa
import pyarrow.compute as pc

from ._bucket import S3Bucket
from ._client import client_for
from ._errors import IntegrityError, InvalidArgumentError, NotExistError, NotSupportedError
from ._store import ObjectInfo

__all__ = ["Inventory", "InventoryFile", "find_inventory", "latest_inventory", "read_inventory"]

_FORMATS = ("CSV", "Parquet", "ORC")
_S3 = re.compile(r"^s3://([^/]+)/(.*)$")
#: CSV column names (``fileSchema``) and the Parquet/ORC ones they correspond to.
_COLUMNS = {
    "Key": "key",
    "Size": "size",
    "LastModifiedDate": "last_modified_date",
    "IsLatest": "is_latest",
    "IsDeleteMarker": "is_delete_marker",
}
_PAGE = 1000


def _split(location: str) -> tuple[str, str]:
    match = _S3.match(location)
    if not match or not match.group(2):
        raise InvalidArgumentError(f"an inventory is at s3://bucket/key, not {location!r}")
    return match.group(1), match.group(2)


@dataclass(frozen=True, slots=True)
class InventoryFile:
    """One data file of a report: its key in the destination bucket, size and MD5."""

    key: str
    size: int
    md5: str


@dataclass(frozen=True, slots=True)
class Inventory:
    """One S3 Inventory report: what its ``manifest.json`` says (see the module)."""

    #: Where its manifest.json is.
    location: str
    #: The bucket it lists, and where its files are.
    source_bucket: str
    destination_bucket: str
    #: When S3 began the report: nothing written since is in it.
    created_at: datetime
    file_format: str
    #: The CSV column names in order (for Parquet and ORC, the columns are named).
    columns: tuple[str, ...]
    files: tuple[InventoryFile, ...]

    def pages(
        self, prefix: str, *, client: Any = None, page_size: int | None = None
    ) -> Iterator[list[ObjectInfo]]:
        """The report's current objects whose key starts with ``prefix``, sorted by key,
        in pages of ``page_size`` (default 1,000): what a LIST of ``prefix`` would have
        said then."""
        page_size = page_size or _PAGE
        keys: list[pa.Array[Any]] = []
        sizes: list[pa.Array[Any]] = []
        modified: list[pa.Array[Any]] = []
        for table in self._tables(client):
            chosen = _under(table, prefix, self.file_format == "CSV")
            keys.append(chosen.column("key").combine_chunks())
            sizes.append(chosen.column("size").combine_chunks())
            modified.append(chosen.column("last_modified_date").combine_chunks())
        if not keys:
            return
        key = pa.concat_arrays(keys)
        order = pc.sort_indices(key)
        key = key.take(order)
        size = pa.concat_arrays(sizes).take(order)
        when = pa.concat_arrays(modified).take(order)
        for start in range(0, len(key), page_size):
            stop = start + page_size
            keys_now: list[Any] = key[start:stop].to_pylist()
            times: list[Any] = when[start:stop].to_pylist()
            yield [
                ObjectInfo(str(k), int(s or 0), m)
                for k, s, m in zip(keys_now, size[start:stop].to_pylist(), times, strict=True)
            ]

    def _tables(self, client: Any) -> Iterator[pa.Table]:
        bucket = S3Bucket(self.destination_bucket, client_for(self.destination_bucket, client))
        for file in self.files:
            data = bucket.read(file.key)
            if file.md5 and hashlib.md5(data).hexdigest() != file.md5.lower():
                raise IntegrityError(
                    f"inventory file s3://{self.destination_bucket}/{file.key} does not "
                    "match the MD5 its manifest gives"
                )
            yield self._table(data, file.key)

    def _table(self, data: bytes, key: str) -> pa.Table:
        where = f"inventory file s3://{self.destination_bucket}/{key}"
        try:
            if self.file_format == "CSV":
                return _csv_table(data, self.columns)
            if self.file_format == "Parquet":
                import pyarrow.parquet as pq

                table = pq.read_table(io.BytesIO(data))
            else:
                import pyarrow.orc as orc

                table = orc.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError, EOFError) as exc:
            raise InvalidArgumentError(f"{where} cannot be read: {exc}") from exc
        missing = [c for c in ("key", "size", "last_modified_date") if c not in table.column_names]
        if missing:
            raise InvalidArgumentError(f"{where} has no {', '.join(missing)} column")
        return _current(table)


def _csv_table(data: bytes, columns: Sequence[str]) -> pa.Table:
    import pyarrow.csv as csv

    names = [_COLUMNS.get(c, c.lower()) for c in columns]
    text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    types: dict[str, Any] = {name: pa.string() for name in names}
    types["size"] = pa.int64()
    table = csv.read_csv(
        io.BytesIO(text),
        read_options=csv.ReadOptions(column_names=names),
        convert_options=csv.ConvertOptions(
            column_types=types, include_columns=[n for n in names if n in _COLUMNS.values()]
        ),
    )
    stamps = pc.strptime(
        pc.utf8_slice_codeunits(table.column("last_modified_date"), 0, 19),
        format="%Y-%m-%dT%H:%M:%S",
        unit="ms",
    )
    table = table.set_column(
        table.column_names.index("last_modified_date"),
        "last_modified_date",
        pc.assume_timezone(stamps, "UTC"),
    )
    for flag in ("is_latest", "is_delete_marker"):
        if flag in table.column_names:
            index = table.column_names.index(flag)
            text_flags: Any = table.column(flag)
            table = table.set_column(index, flag, pc.equal(text_flags, pa.scalar("true")))
    return _current(table)


def _current(table: pa.Table) -> pa.Table:
    """Only the current version of each object (an inventory may list all versions),
    and only rows that say when it was modified (one that does not is never proposed)."""
    dated: Any = pc.is_valid(table.column("last_modified_date"))
    table = table.filter(dated)
    if "is_latest" in table.column_names:
        latest: Any = pc.fill_null(table.column("is_latest"), pa.scalar(True))
        table = table.filter(latest)
    if "is_delete_marker" in table.column_names:
        marker: Any = pc.fill_null(table.column("is_delete_marker"), pa.scalar(False))
        table = table.filter(pc.invert(marker))
    return table


def _under(table: pa.Table, prefix: str, encoded: bool) -> pa.Table:
    """The rows of ``table`` whose key starts with ``prefix``, keys decoded.

    A CSV key is URL-encoded. Its few likely escapes (``%3A``, ``%2F``) are decoded for
    all rows at once to pick the rows that may be under ``prefix``; only those are
    decoded fully, and checked again. A key missed by the first pick is not proposed
    for deletion, which is safe; one kept wrongly is dropped by the second check."""
    keys = table.column("key")
    if encoded:
        for escape, char in (("%3A", ":"), ("%3a", ":"), ("%2F", "/"), ("%2f", "/")):
            keys = pc.replace_substring(keys, escape, char)
        table = table.filter(pc.starts_with(keys, prefix))
        encoded_keys: list[Any] = table.column("key").to_pylist()
        decoded = pa.array([unquote_plus(str(k)) for k in encoded_keys], pa.string())
        table = table.set_column(table.column_names.index("key"), "key", decoded)
        keys = table.column("key")
    return table.filter(pc.starts_with(keys, prefix))


def read_inventory(location: str | os.PathLike[str], *, client: Any = None) -> Inventory:
    """The report whose ``manifest.json`` is at ``location`` (``s3://bucket/key``).

    Raises NotExistError if it is missing, InvalidArgumentError if it is not an S3
    Inventory manifest, NotSupportedError for a file format other than CSV, Parquet
    and ORC; S3 errors are translated."""
    bucket_name, key = _split(os.fspath(location))
    bucket = S3Bucket(bucket_name, client_for(bucket_name, client))
    try:
        data = json.loads(bucket.read(key))
    except ValueError as exc:
        raise InvalidArgumentError(f"{location} is not JSON: {exc}") from exc
    where = f"inventory manifest {location}"
    try:
        file_format = str(data["fileFormat"])
        stamp = int(data["creationTimestamp"])
        source = str(data["sourceBucket"])
        destination = str(data.get("destinationBucket") or bucket_name)
        files = tuple(
            InventoryFile(str(f["key"]), int(f.get("size", 0)), str(f.get("MD5checksum", "")))
            for f in data["files"]
        )
        schema = str(data.get("fileSchema", ""))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{where} lacks a valid {exc}") from exc
    if file_format not in _FORMATS:
        raise NotSupportedError(f"{where}: file format {file_format!r} is not CSV, Parquet or ORC")
    columns = tuple(name.strip() for name in schema.split(",")) if file_format == "CSV" else ()
    if file_format == "CSV" and not {"Key", "Size", "LastModifiedDate"} <= set(columns):
        raise InvalidArgumentError(
            f"{where}: its fileSchema must name Key, Size and LastModifiedDate, got {schema!r}"
        )
    return Inventory(
        location=f"s3://{bucket_name}/{key}",
        source_bucket=source,
        destination_bucket=destination.removeprefix("arn:aws:s3:::"),
        created_at=datetime.fromtimestamp(stamp / 1000, UTC),
        file_format=file_format,
        columns=columns,
        files=files,
    )


def latest_inventory(prefix: str, *, client: Any = None) -> str | None:
    """The location of the newest ``manifest.json`` under ``prefix`` (an
    ``s3://bucket/<destination-prefix>/<source-bucket>/<config-id>/``), by the
    timestamp folder S3 names it in; None if there is none yet."""
    bucket_name, key = _split(prefix)
    if not key.endswith("/"):
        raise InvalidArgumentError(f"{prefix} is not a prefix (end it with '/')")
    bucket = S3Bucket(bucket_name, client_for(bucket_name, client))
    found = [
        item.key
        for page in bucket.list_pages(key)
        for item in page.items
        if item.key.endswith("/manifest.json")
    ]
    if not found:
        return None
    return f"s3://{bucket_name}/{max(found)}"


def find_inventory(location: str, *, client: Any = None) -> Inventory:
    """The report at ``location``: a ``manifest.json``, or the newest under a prefix
    (ending in '/', see :func:`latest_inventory`); NotExistError if there is none."""
    found = latest_inventory(location, client=client) if location.endswith("/") else location
    if found is None:
        raise NotExistError(
            f"no S3 Inventory report (manifest.json) under {location} yet: S3 writes the "
            "first within 48 hours of the inventory's configuration"
        )
    return read_inventory(found, client=client)
