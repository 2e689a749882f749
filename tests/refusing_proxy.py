"""A loopback HTTP proxy in front of an S3 server that refuses to delete some keys.

DeleteObjects answers 200 with per-key errors; real servers do that for keys under a
legal hold or a deny policy. The proxy takes refused keys out of the request before
forwarding it and puts an AccessDenied error for each into the response, so the
server really keeps them, exactly as such a server would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from xml.sax.saxutils import escape

from loopback_proxy import LoopbackProxy, ask_upstream, replay, request_body

_OBJECT = re.compile(rb"<Object>\s*<Key>(.*?)</Key>.*?</Object>", re.S)
_EMPTY_RESULT = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>'
)
_DROPPED = ("content-md5", "x-amz-checksum-", "x-amz-sdk-checksum", "content-length", "host")


class RefusingProxy(LoopbackProxy):
    def __init__(self, upstream_port: int, refuse: Callable[[str], bool]) -> None:
        self.refuse = refuse
        self.refused: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = request_body(self)
                refused: list[str] = []
                if self.command == "POST" and re.search(r"[?&]delete(=|&|$)", self.path):
                    body, refused = proxy._strip(body)
                headers = {
                    k: v for k, v in self.headers.items() if not k.lower().startswith(_DROPPED)
                }
                if refused:
                    headers = {
                        k: v for k, v in headers.items() if k.lower() != "x-amz-content-sha256"
                    }
                    headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
                if refused and not _OBJECT.search(body):
                    # Nothing left to forward: answer as the server would, with errors only.
                    status, reply_headers, data = 200, [], _EMPTY_RESULT
                else:
                    status, reply_headers, data = ask_upstream(upstream_port, self, body, headers)
                if refused and status == 200:
                    errors = b"".join(
                        b"<Error><Key>" + escape(k).encode() + b"</Key><Code>AccessDenied"
                        b"</Code><Message>refused by the test proxy</Message></Error>"
                        for k in refused
                    )
                    data = data.replace(b"</DeleteResult>", errors + b"</DeleteResult>")
                replay(self, status, reply_headers, data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        super().__init__(Handler)

    def _strip(self, body: bytes) -> tuple[bytes, list[str]]:
        refused: list[str] = []

        def drop(match: re.Match[bytes]) -> bytes:
            key = match.group(1).decode()
            if self.refuse(key):
                refused.append(key)
                return b""
            return match.group(0)

        stripped = _OBJECT.sub(drop, body)
        self.refused.extend(refused)
        return stripped, refused
