"""Listing pages parsed by ElementTree (``_listparse``) say what botocore would, on every
server of the session: keys with characters S3 encodes, sizes, times, ETags, pages."""

from __future__ import annotations

from typing import Any

from devkit.localserver import LocalS3
from s3repo_core._bucket import S3Bucket
from s3repo_core._listparse import fast_listing

KEYS = [
    "p/plain",
    "p/with space",
    "p/per%cent+plus",
    "p/amp&lt<gt>quote\"apos'",
    "p/ünïcödé/ключ",
]


def test_fast_pages_match_botocore_s_and_leave_other_calls_alone(
    s3server: LocalS3, client: Any, bucket: str
) -> None:
    for n, key in enumerate(KEYS):
        client.put_object(Bucket=bucket, Key=key, Body=b"x" * n)
    plain = client.list_objects_v2(Bucket=bucket, Prefix="p/", MaxKeys=4)
    expected = [
        {k: item[k] for k in ("Key", "Size", "LastModified", "ETag")}
        for page in (
            plain,
            client.list_objects_v2(
                Bucket=bucket, Prefix="p/", ContinuationToken=plain["NextContinuationToken"]
            ),
        )
        for item in page["Contents"]
    ]
    assert sorted(item["Key"] for item in expected) == sorted(KEYS)

    pages = list(S3Bucket(bucket, client).list_pages("p/", page_size=4))
    assert [page.truncated for page in pages] == [True, False]
    listed = [(i.key, i.size, i.modified) for page in pages for i in page.items]
    assert listed == [(e["Key"], e["Size"], e["LastModified"]) for e in expected]

    with fast_listing(client):
        fast = client.list_objects_v2(Bucket=bucket, Prefix="p/")
    assert [
        {k: item[k] for k in ("Key", "Size", "LastModified", "ETag")} for item in fast["Contents"]
    ] == expected
    assert fast["KeyCount"] == len(KEYS) and not fast["IsTruncated"]
    # Outside the block the handler stays registered but leaves the response to botocore.
    again = client.list_objects_v2(Bucket=bucket, Prefix="p/")
    assert [item["Key"] for item in again["Contents"]] == [e["Key"] for e in expected]
    assert "Owner" not in again["Contents"][0] or "StorageClass" in again["Contents"][0]


def test_an_empty_listing_and_a_missing_bucket(client: Any, bucket: str) -> None:
    with fast_listing(client):
        empty = client.list_objects_v2(Bucket=bucket, Prefix="nothing/")
    assert "Contents" not in empty and empty["KeyCount"] == 0
    import pytest

    from s3repo_core import NotExistError

    with pytest.raises(NotExistError):
        list(S3Bucket(f"{bucket}-missing", client).list_pages("p/"))
