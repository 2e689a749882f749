"""A loopback proxy that enforces what a bucket policy or bucket ownership would.

moto ignores ``ExpectedBucketOwner`` and the conditions of a bucket policy, and the
JuiceFS gateway ignores both, so the proxy plays AWS's part: ``refuse(method, path,
headers)`` returns the reason to answer 403 AccessDenied (as S3 does, with its XML
error), or None to forward the request as it came.
"""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from xml.sax.saxutils import escape

from loopback_proxy import LoopbackProxy, ask_upstream

Refuse = Callable[[str, str, dict[str, str]], str | None]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}


class PolicyProxy(LoopbackProxy):
    def __init__(self, upstream_port: int, refuse: Refuse) -> None:
        self.refused: list[tuple[str, str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers Expect: 100-continue itself

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        chunk = self.rfile.read(size + 2)[:size]
                        if not size:
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            return data
                        data += chunk
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                length = str(len(data))
                for k, v in headers:
                    if k.lower() == "content-length" and self.command == "HEAD":
                        length = v  # a HEAD announces the object's length, with no body
                    elif k.lower() not in _HOP_BY_HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _forward(self) -> None:
                body = self._body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                reason = refuse(self.command, self.path, headers)
                if reason is not None:
                    proxy.refused.append((self.command, self.path, reason))
                    error = (
                        "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied"
                        f"</Code><Message>{escape(reason)}</Message></Error>"
                    ).encode()
                    self._answer(403, [("Content-Type", "application/xml")], error)
                    return
                forwarded = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("transfer-encoding", "content-length", "expect")
                }
                self._answer(*ask_upstream(upstream_port, self, body, forwarded))

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        super().__init__(Handler)
