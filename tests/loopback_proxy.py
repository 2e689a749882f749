"""What every proxy of ours between boto3 and a real S3 server shares: an HTTP server
on 127.0.0.1 in a thread of the test, a context manager that stops it."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

Reply = tuple[int, list[tuple[str, str]], bytes]
#: Reply headers not passed on: send_response writes its own Date and Server, and the
#: body is sent whole with a Content-Length of its own.
_NOT_REPLAYED = ("content-length", "transfer-encoding", "connection", "date", "server")


def ask_upstream(
    port: int, handler: BaseHTTPRequestHandler, body: bytes, headers: Mapping[str, str]
) -> Reply:
    """The request ``handler`` holds, sent on to the server on ``port``: its answer."""
    upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        upstream.request(handler.command, handler.path, body=body, headers=dict(headers))
        response = upstream.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        upstream.close()


def request_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The body of the request ``handler`` holds, read whole (its Content-Length)."""
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def replay(
    handler: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], data: bytes
) -> None:
    """Answer ``handler``'s client with ``status``, ``headers`` and the whole of ``data``.

    A HEAD's answer has no body but keeps the server's Content-Length: the object's size.
    """
    handler.send_response(status)
    length = str(len(data))
    for k, v in headers:
        if handler.command == "HEAD" and k.lower() == "content-length":
            length = v
        elif k.lower() not in _NOT_REPLAYED:
            handler.send_header(k, v)
    handler.send_header("Content-Length", length)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)


class LoopbackProxy:
    """Serves ``handler`` on a free port of 127.0.0.1 from ``with`` to its end."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
