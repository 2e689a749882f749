"""Counting what a boto3 client sends, to test dedup by what really went over the wire."""

from __future__ import annotations

from collections import Counter
from typing import Any


class RequestLog:
    """Records the operations a client calls and the body bytes it uploads."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.uploaded = 0
        client.meta.events.register("before-call.s3", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls[model.name] += 1
        if model.name in ("PutObject", "UploadPart"):
            body = params.get("body")
            if isinstance(body, bytes | bytearray):
                self.uploaded += len(body)
            elif body is not None and hasattr(body, "seek"):
                position = body.tell()
                body.seek(0, 2)
                self.uploaded += body.tell() - position
                body.seek(position)

    def reset(self) -> None:
        self.calls.clear()
        self.uploaded = 0
