"""ListObjectsV2 pages read with ElementTree instead of botocore's per-field parser.

botocore parses a response by walking its output shape in Python, field by field: a
page of 1,000 keys takes about 0.3 s of CPU, more than moto takes to answer it and
several times what ``s5cmd`` spends. So a LIST that s3repo sends (and only those: the
switch is per thread, and a caller's own requests on a shared client are left alone)
has its ``<Contents>`` entries read by ElementTree's C parser, and botocore parses
what is left (the truncation flag, the continuation token, the prefix), which is
small. Keys stay as the server sent them, so botocore's own handler still URL-decodes
them (``EncodingType=url``). Anything unexpected (an error status, a body that does not
parse, an entry without a key) leaves the response to botocore whole.
"""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

__all__ = ["fast_listing"]

_EVENT = "before-parse.s3.ListObjectsV2"
_active = threading.local()
_CONTENTS = re.compile(rb"<Contents>.*?</Contents>", re.DOTALL)


@contextmanager
def fast_listing(client: Any) -> Iterator[None]:
    """Within this block, this thread's ListObjectsV2 calls on ``client`` parse fast."""
    client.meta.events.register(_EVENT, _parse_contents, unique_id="s3repo-fast-listing")
    _active.on = True
    try:
        yield
    finally:
        _active.on = False


def _parse_contents(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    if not getattr(_active, "on", False) or response_dict.get("status_code", 500) >= 300:
        return
    body = response_dict.get("body")
    if not isinstance(body, bytes) or b"<Contents>" not in body:
        return
    try:
        contents = _contents(ET.fromstring(body))
    except (ET.ParseError, ValueError, KeyError):
        return
    customized_response_dict["Contents"] = contents
    response_dict["body"] = _CONTENTS.sub(b"", body)


def _contents(root: ET.Element) -> list[dict[str, Any]]:
    namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    key_tag, size_tag = f"{namespace}Key", f"{namespace}Size"
    modified_tag, etag_tag = f"{namespace}LastModified", f"{namespace}ETag"
    class_tag = f"{namespace}StorageClass"
    found = []
    for entry in root.iter(f"{namespace}Contents"):
        key = entry.findtext(key_tag)
        if key is None:
            raise KeyError("an entry without a key")
        item: dict[str, Any] = {"Key": key}
        size = entry.findtext(size_tag)
        if size is not None:
            item["Size"] = int(size)
        modified = entry.findtext(modified_tag)
        if modified is not None:
            item["LastModified"] = _timestamp(modified)
        etag = entry.findtext(etag_tag)
        if etag is not None:
            item["ETag"] = etag
        storage_class = entry.findtext(class_tag)
        if storage_class is not None:
            item["StorageClass"] = storage_class
        found.append(item)
    return found


def _timestamp(text: str) -> datetime:
    """An ISO-8601 time as S3 writes it (``2026-12-01T19:00:00.000Z``), in UTC."""
    when = datetime.fromisoformat(text)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
