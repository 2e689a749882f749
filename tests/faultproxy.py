"""A loopback HTTP proxy between boto3 and an S3 server that breaks requests on purpose.

Each request is forwarded to the upstream server as it came (headers in order, the
Host header and so the signature intact, a chunked or aws-chunked body byte for byte);
the proxy drops only hop-by-hop headers and answers ``Expect: 100-continue`` itself.
The response is read whole from the server and sent on, unless the request draws a
fault. Fault classes, each with its own rate (a fraction of the requests it applies
to):

==================  ==============================================================
``reset-request``   the connection is reset while the request body comes in; the
                    request never reaches the server
``reset-response``  forwarded (it took effect); the connection is reset part-way
                    through the response
``truncate``        forwarded; the full Content-Length is announced, the connection
                    closed early
``short``           forwarded; a shorter body is sent, announced as such
``stall``           no answer for ``stall_seconds`` (longer than the client's read
                    timeout), before forwarding, after it, or in the middle of the body;
                    then the connection is closed
``500-before``      500 InternalError instead of forwarding
``500-after``       forwarded (it took effect), then 500 InternalError
``503-before``      503 SlowDown instead of forwarding
``503-after``       forwarded, then 503 ServiceUnavailable (not SlowDown: S3's SlowDown
                    means the request was not applied, and collection relies on it)
``404-before``      404 NoSuchKey (NoSuchUpload for a multipart request) instead of
                    forwarding
``404-after``       forwarded, then 404
``flip``            forwarded; one to three bytes of an object GET's body are flipped
==================  ==============================================================

``truncate`` and ``short`` apply to responses with a body, ``flip`` to GETs of an object
(not listings), the others to every request, or to the request kinds given as
``kinds`` (see ``request_kind``: ``"POST delete"`` for DeleteObjects). Faults are drawn from
``random.Random(seed)`` in request order, so a sequential client sees the same faults
for the same seed. The proxy counts requests and the faults it injected per class
(and per kind of request); ``on_request(number, method, path)`` is called as each
request arrives, before its body is read and it is forwarded, and
``on_response(number, method, path, status)`` once the server has answered it, before
the client hears the answer (crash tests kill a client at either point). As a
context manager it starts and stops; stopping wakes every stall, closes every
connection and joins every thread it started.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import random
import re
import socket
import socketserver
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import unescape

__all__ = ["FAULT_CLASSES", "FaultProxy"]

RESET_REQUEST = "reset-request"
RESET_RESPONSE = "reset-response"
TRUNCATE = "truncate"
SHORT = "short"
STALL = "stall"
FLIP = "flip"
ERRORS = {
    "500-before": (500, "InternalError", "We encountered an internal error. Please try again."),
    "500-after": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503-before": (503, "SlowDown", "Please reduce your request rate."),
    "503-after": (503, "ServiceUnavailable", "Service is unable to handle request."),
    "404-before": (404, "NoSuchKey", "The specified key does not exist."),
    "404-after": (404, "NoSuchKey", "The specified key does not exist."),
}
#: Every fault class, in the order their draws are made for each request.
FAULT_CLASSES = (
    RESET_REQUEST,
    RESET_RESPONSE,
    TRUNCATE,
    SHORT,
    STALL,
    *ERRORS,
    FLIP,
)

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "upgrade",
        "expect",  # answered here (100 Continue); http.client does not wait for it
    }
)
_BODY_CHUNK = 64 * 1024
_DELETE_KEY = re.compile(rb"<Key>(.*?)</Key>", re.S)
_NO_BODY_STATUSES = (204, 304)


class _Reset(Exception):
    """End this connection now (the fault already did what it had to)."""


def request_kind(method: str, path: str) -> str:
    """A short name for what an S3 request does: 'GET object', 'PUT part', 'POST delete'."""
    split = urlsplit(path)
    query = {k for k, _ in parse_qsl(split.query, keep_blank_values=True)}
    has_key = split.path.strip("/").count("/") >= 1
    if "uploadId" in query:
        what = {"PUT": "part", "POST": "complete", "DELETE": "abort", "GET": "parts"}
        return f"{method} {what.get(method, 'upload')}"
    if "uploads" in query:
        return f"{method} {'create-multipart' if method == 'POST' else 'list-multipart'}"
    if "delete" in query:
        return f"{method} delete"
    if not has_key:
        return f"{method} {'list' if method == 'GET' else 'bucket'}"
    return f"{method} object"


def _is_object_get(method: str, path: str) -> bool:
    return request_kind(method, path) == "GET object"


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # A named thread of our own per connection, so that stop() can join them all.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{self.proxy.name}-conn",
            daemon=True,
        )
        self.proxy._track_thread(thread)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.proxy._count("handler-errors")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    #: Idle keep-alive connections end after this; stop() ends them at once.
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.proxy = self.server.proxy
        self.proxy._track_socket(self.connection)
        self._upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        self._close_upstream()
        self.proxy._untrack_socket(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _Reset:
            self.close_connection = True
        except (OSError, http.client.HTTPException):
            self.proxy._count("connection-errors")
            self.close_connection = True

    def do_any(self) -> None:
        self.proxy._handle(self)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_any

    # -- the client side ------------------------------------------------------------

    def read_body(self, limit: int | None = None) -> bytes:
        """The request body as sent (chunked framing included), or its first ``limit`` bytes."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length = int(self.headers.get("Content-Length") or 0)
        wanted = length if limit is None else min(limit, length)
        parts = []
        while wanted > 0:
            part = self.rfile.read(min(_BODY_CHUNK, wanted))
            if not part:
                raise _Reset("the client closed the connection mid-body")
            parts.append(part)
            wanted -= len(part)
        return b"".join(parts)

    def _read_chunked(self, limit: int | None) -> bytes:
        raw = bytearray()
        while limit is None or len(raw) < limit:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise _Reset("a malformed chunk size line")
            raw += line
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers (aws-chunked checksums come here), then a blank line
                    trailer = self.rfile.readline(65536)
                    if not trailer:
                        raise _Reset("the client closed the connection in the trailers")
                    raw += trailer
                    if trailer in (b"\r\n", b"\n"):
                        return bytes(raw)
            left = size + 2  # the chunk and its CRLF
            while left:
                part = self.rfile.read(min(_BODY_CHUNK, left))
                if not part:
                    raise _Reset("the client closed the connection mid-chunk")
                raw += part
                left -= len(part)
        return bytes(raw[:limit])

    def reset(self) -> None:
        """Abort the client connection with a TCP RST."""
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.rfile.close()
        self.connection.close()
        raise _Reset

    def hang_up(self) -> None:
        """Close the client connection in an orderly way (FIN), mid-response or not."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Reset

    def send_head(
        self, status: int, reason: str, headers: Iterable[tuple[str, str]], length: int | None
    ) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    # -- the server side ------------------------------------------------------------

    def forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send the request upstream; (status, reason, headers, body) of the answer."""
        for attempt in (1, 2):
            reused = self._upstream is not None
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(
                    "127.0.0.1", self.proxy.upstream_port, timeout=self.proxy.upstream_timeout
                )
                self._upstream.connect()
                self.proxy._track_socket(self._upstream.sock)
            conn = self._upstream
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        conn.putheader(name, value)
                conn.endheaders(body if body else None)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self._close_upstream()
                if reused and attempt == 1:
                    continue  # the server closed an idle connection: once more, fresh
                raise
            headers = response.getheaders()
            if response.will_close:
                self._close_upstream()
            return response.status, response.reason, headers, data
        raise AssertionError("unreachable")

    def _close_upstream(self) -> None:
        if self._upstream is not None:
            sock = self._upstream.sock
            if sock is not None:
                self.proxy._untrack_socket(sock)
            self._upstream.close()
            self._upstream = None


class FaultProxy:
    """A fault-injecting proxy of the S3 server at ``127.0.0.1:upstream_port``."""

    def __init__(
        self,
        upstream_port: int,
        *,
        seed: int | str = 0,
        rates: dict[str, float] | None = None,
        stall_seconds: float = 2.0,
        upstream_timeout: float = 120.0,
        on_request: Callable[[int, str, str], None] | None = None,
        on_response: Callable[[int, str, str, int], None] | None = None,
        name: str = "faultproxy",
        kinds: frozenset[str] | None = None,
    ) -> None:
        self.upstream_port = upstream_port
        #: The request kinds faults are injected into; None: every kind.
        self.faulted_kinds = kinds
        self.seed = seed
        self.rates: dict[str, float] = {}
        self.set_rates(rates or {})
        self.stall_seconds = stall_seconds
        self.upstream_timeout = upstream_timeout
        self.on_request = on_request
        self.on_response = on_response
        self.name = name
        self.requests = 0
        #: Faults injected, by class.
        self.faults: Counter[str] = Counter()
        #: Faults injected, by (class, request kind).
        self.faults_by_kind: Counter[tuple[str, str]] = Counter()
        #: Requests seen, by request kind.
        self.kinds: Counter[str] = Counter()
        #: The latest faults injected: (time.time(), class, method, path).
        self.log: deque[tuple[float, str, str, str]] = deque(maxlen=20000)
        #: The latest requests: [arrived, method, path, copy source, status or 0, the fault
        #: drawn (injected only where its class applies)].
        self.history: deque[list[Any]] = deque(maxlen=50000)
        #: DeleteObjects requests: (arrived, forwarded, answered, keys, fault), time.time();
        #: answered is 0 if it was never forwarded.
        self.deletes: deque[tuple[float, float, float, list[str], str]] = deque(maxlen=5000)
        self.other: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._server: _Server | None = None
        self._serving: threading.Thread | None = None
        self.port = 0

    def set_rates(self, rates: dict[str, float]) -> None:
        """Change the fault rates (a class left out gets 0); takes effect at once."""
        unknown = set(rates) - set(FAULT_CLASSES)
        if unknown:
            raise ValueError(f"unknown fault classes {sorted(unknown)}; see FAULT_CLASSES")
        self.rates = {c: float(rates.get(c, 0.0)) for c in FAULT_CLASSES}

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- starting and stopping ------------------------------------------------------

    def start(self) -> FaultProxy:
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self._serving = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-accept",
            daemon=True,
        )
        self._serving.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wake every stall, close every connection, join every thread."""
        if self._server is None:
            return
        self._closing.set()
        self._server.shutdown()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        assert self._serving is not None
        self._serving.join(10)
        deadline = time.monotonic() + 10
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        self._server = None

    def leftover_threads(self) -> list[threading.Thread]:
        """Threads of this proxy still alive (none once stop() has returned)."""
        threads = [*self._threads, *([self._serving] if self._serving else [])]
        return [t for t in threads if t.is_alive()]

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track_thread(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def _track_socket(self, sock: socket.socket | None) -> None:
        if sock is not None:
            with self._lock:
                self._sockets.add(sock)

    def _untrack_socket(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def _count(self, what: str) -> None:
        with self._lock:
            self.other[what] += 1

    # -- one request ----------------------------------------------------------------

    def _draw(self, kind: str) -> tuple[int, str | None, random.Random]:
        """(request number, the fault it drew or None, an rng for the fault's details)."""
        with self._lock:
            self.requests += 1
            self.kinds[kind] += 1
            number = self.requests
            draws = [self._rng.random() for _ in FAULT_CLASSES]
            details = random.Random(self._rng.getrandbits(64))
        fault = next(
            (c for c, u in zip(FAULT_CLASSES, draws, strict=True) if u < self.rates[c]), None
        )
        if self.faulted_kinds is not None and kind not in self.faulted_kinds:
            fault = None  # drawn all the same: the draws of other requests do not move
        return number, fault, details

    def _injected(self, fault: str, kind: str, method: str = "", path: str = "") -> None:
        with self._lock:
            self.faults[fault] += 1
            self.faults_by_kind[fault, kind] += 1
            self.log.append((time.time(), fault, method, path))

    def _stall(self) -> None:
        self._closing.wait(self.stall_seconds)

    def _handle(self, h: _Handler) -> None:
        arrived = time.time()
        method, path = h.command, h.path
        kind = request_kind(method, path)
        number, fault, rng = self._draw(kind)
        record = [arrived, method, path, h.headers.get("x-amz-copy-source", ""), 0, fault or ""]
        with self._lock:
            self.history.append(record)
        if self.on_request is not None:
            self.on_request(number, method, path)
        if self._closing.is_set():
            h.reset()

        if fault == RESET_REQUEST:
            length = int(h.headers.get("Content-Length") or 0)
            chunked = "chunked" in h.headers.get("Transfer-Encoding", "").lower()
            if length or chunked:
                h.read_body(rng.randrange(max(length, 1)) if length else rng.randrange(4096))
            self._injected(fault, kind, method, path)
            h.reset()
        body = h.read_body()
        if fault in ERRORS and fault.endswith("-before"):
            self._injected(fault, kind, method, path)
            self._send_error(h, fault)
            return
        if fault == STALL and rng.random() < 1 / 3:
            self._injected(fault, kind, method, path)
            self._stall()  # before forwarding: the request never reaches the server
            h.hang_up()

        forwarded = time.time()
        status, reason, headers, data = h.forward(body)
        record[4] = status
        if kind == "POST delete":
            keys = [unescape(k.decode()) for k in _DELETE_KEY.findall(body)]
            with self._lock:
                self.deletes.append((arrived, forwarded, time.time(), keys, fault or ""))
        if self.on_response is not None:
            self.on_response(number, method, path, status)
        head_only = method == "HEAD" or status in _NO_BODY_STATUSES or 100 <= status < 200
        if head_only:
            # Content-Length of a HEAD is the object's size: pass it on as the server said.
            forwarded = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
            forwarded = [(k, v) for k, v in forwarded if k.lower() != "transfer-encoding"]
            length = None
        else:
            forwarded = [
                (k, v)
                for k, v in headers
                if k.lower() not in _HOP_BY_HOP
                and k.lower() not in ("content-length", "transfer-encoding")
            ]
            length = len(data)

        if fault in ERRORS:  # -after: the request took effect, the client hears otherwise
            self._injected(fault, kind, method, path)
            self._send_error(h, fault)
            return
        if fault == STALL:
            self._injected(fault, kind, method, path)
            if data and not head_only and rng.random() < 0.5:
                h.send_head(status, reason, forwarded, length)
                h.wfile.write(data[: rng.randrange(len(data))])
                h.wfile.flush()
            self._stall()
            h.hang_up()
        if fault == RESET_RESPONSE:
            self._injected(fault, kind, method, path)
            if data and not head_only:
                h.send_head(status, reason, forwarded, length)
                h.wfile.write(data[: rng.randrange(len(data))])
                h.wfile.flush()
            h.reset()
        if fault == TRUNCATE and data and not head_only:
            self._injected(fault, kind, method, path)
            h.send_head(status, reason, forwarded, length)
            h.wfile.write(data[: rng.randrange(len(data))])
            h.hang_up()
        if fault == SHORT and data and not head_only:
            self._injected(fault, kind, method, path)
            data = data[: rng.randrange(len(data))]
            length = len(data)
        if fault == FLIP and data and _is_object_get(method, path) and status in (200, 206):
            self._injected(fault, kind, method, path)
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                flipped[rng.randrange(len(flipped))] ^= rng.randint(1, 255)
            data = bytes(flipped)
        h.send_head(status, reason, forwarded, length)
        if not head_only:
            h.wfile.write(data)
        h.wfile.flush()

    def _send_error(self, h: _Handler, fault: str) -> None:
        status, code, message = ERRORS[fault]
        if status == 404 and "uploadId=" in h.path:
            code, message = "NoSuchUpload", "The specified upload does not exist."
        request_id = f"FAULT{self.requests:011d}"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Resource>{urlsplit(h.path).path}</Resource>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers = [
            ("Content-Type", "application/xml"),
            ("Date", email.utils.formatdate(usegmt=True)),
            ("x-amz-request-id", request_id),
        ]
        if h.command == "HEAD":
            h.send_head(status, http.client.responses.get(status, ""), headers, 0)
        else:
            h.send_head(status, http.client.responses.get(status, ""), headers, len(body))
            h.wfile.write(body)
        h.wfile.flush()
