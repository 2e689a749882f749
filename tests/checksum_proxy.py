"""A loopback HTTP proxy in front of an S3 server that checks declared checksums, as AWS does.

moto and the JuiceFS gateway store a PutObject or UploadPart whatever its declared
``x-amz-checksum-crc32`` or ``x-amz-checksum-sha256`` says; AWS refuses bytes that do
not match with 400 BadDigest. This proxy makes that check before it forwards a request,
so that tests can take the path s3repo takes with a server that checks. Everything else
is forwarded as it came.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler

from loopback_proxy import LoopbackProxy, ask_upstream, replay, request_body

_BAD_DIGEST = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>BadDigest</Code>'
    b"<Message>The %s you specified did not match the calculated checksum.</Message></Error>"
)
_NOT_FORWARDED = ("host", "expect", "connection", "keep-alive", "content-length")


def _checksum(algorithm: str, body: bytes) -> str:
    raw = (
        zlib.crc32(body).to_bytes(4, "big")
        if algorithm == "crc32"
        else hashlib.sha256(body).digest()
    )
    return base64.b64encode(raw).decode()


class ChecksumProxy(LoopbackProxy):
    """Forwards to the S3 server on ``upstream_port``; refuses bytes that do not match
    their declared CRC32 or SHA-256. ``checked`` counts the checks by algorithm and
    ``refused`` the requests refused."""

    def __init__(self, upstream_port: int) -> None:
        self.checked: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # so that Expect: 100-continue is answered

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = request_body(self)
                if self.command == "PUT" and not proxy._matches(self.headers, body):
                    replay(self, 400, [("Content-Type", "application/xml")], self._refusal())
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
                replay(self, *ask_upstream(upstream_port, self, body, headers))

            def _refusal(self) -> bytes:
                algorithm = "SHA256" if "x-amz-checksum-sha256" in self.headers else "CRC32"
                return _BAD_DIGEST % algorithm.encode()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        super().__init__(Handler)

    def _matches(self, headers: object, body: bytes) -> bool:
        for algorithm in ("crc32", "sha256"):
            declared = headers.get(f"x-amz-checksum-{algorithm}")  # type: ignore[attr-defined]
            if declared is None:
                continue
            with self._lock:
                self.checked[algorithm] += 1
            if declared != _checksum(algorithm, body):
                with self._lock:
                    self.refused[algorithm] += 1
                return False
        return True
