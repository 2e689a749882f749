"""A loopback S3 endpoint of N synthetic objects, for the collection scale benchmark only.

No S3 server on this machine holds 100 million objects, so the listing side is
simulated: the objects are N digests drawn from a seed and sorted, each under
``<prefix>/objects/sha256:<hex>`` with one size and one old Last-Modified. The endpoint
answers what a collection sends: ListObjectsV2 (pages of those keys, and of the few
real keys a collection writes: leases, under a dict), GET/PUT/HEAD/DELETE of real keys,
DeleteObjects (marking synthetic keys deleted), ListMultipartUploads (none). Every
request waits ``latency`` seconds first, as S3's do; DeleteObjects above ``delete_rate``
requests a second (a token bucket) are answered 503 SlowDown. It counts requests.

Run as ``python -m bench.synthetic_s3 --objects N --seed S --prefix P --latency 0.1``:
it prints ``port <n>`` once listening, serves until stdin closes or it is killed, and
prints its counts on exit. :func:`synthetic_digests` gives the same digests to a client.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import threading
import time
from collections import Counter
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

import numpy as np

MODIFIED = "2020-01-01T00:00:00.000Z"
NO_UPLOADS = (
    b'<?xml version="1.0"?><ListMultipartUploadsResult><IsTruncated>false</IsTruncated>'
    b"</ListMultipartUploadsResult>"
)
SIZE = 1000
_KEY_IN_DELETE = re.compile(rb"<Key>(.*?)</Key>", re.S)


def synthetic_digests(count: int, seed: int) -> np.ndarray:
    """The ``count`` digests of ``seed``, sorted: a (count, 32) uint8 array."""
    raw = np.frombuffer(np.random.default_rng(seed).bytes(32 * count), dtype=np.uint8)
    raw = raw.reshape(count, 32)
    first = raw[:, :8].copy().view(">u8").reshape(-1).astype(np.uint64)
    return np.ascontiguousarray(raw[np.argsort(first, kind="stable")])


class Objects:
    """The synthetic keys, in key order, and which are deleted."""

    def __init__(self, count: int, seed: int, prefix: str) -> None:
        self.digests = synthetic_digests(count, seed)
        self.first = self.digests[:, :8].copy().view(">u8").reshape(-1).astype(np.uint64)
        self.deleted = np.zeros(count, dtype=np.bool_)
        self.head = f"{prefix}/objects/sha256:" if prefix else "objects/sha256:"
        self.lock = threading.Lock()

    def index_of(self, key: str) -> int | None:
        if not key.startswith(self.head):
            return None
        try:
            raw = bytes.fromhex(key[len(self.head) :])
        except ValueError:
            return None
        if len(raw) != 32:
            return None
        first = np.uint64(int.from_bytes(raw[:8], "big"))
        at = int(np.searchsorted(self.first, first))
        while at < len(self.first) and self.first[at] == first:
            if self.digests[at].tobytes() == raw:
                return at
            at += 1
        return None

    def after(self, prefix: str, start_after: str, limit: int) -> tuple[list[str], bool]:
        """Keys under ``prefix`` after ``start_after``, up to ``limit``; and whether more.

        A key is the head and 64 hex digits, and hex sorts as the digests do."""
        head = self.head
        if not (prefix.startswith(head) or head.startswith(prefix)):
            return [], False
        hex_prefix = prefix[len(head) :] if prefix.startswith(head) else ""
        if start_after.startswith(head):
            hex_after = start_after[len(head) :]
        elif start_after < head:
            hex_after = ""
        else:
            return [], False  # after every synthetic key
        start = int(np.searchsorted(self.first, np.uint64(_bound(max(hex_prefix, hex_after)))))
        keys: list[str] = []
        count = len(self.first)
        while start < count and len(keys) <= limit:
            stop = min(count, start + 2 * limit)
            hexes = self.digests[start:stop].tobytes().hex()
            for i in range(stop - start):
                digits = hexes[64 * i : 64 * i + 64]
                if not digits.startswith(hex_prefix):
                    if digits > hex_prefix:
                        return keys[:limit], len(keys) > limit  # past the prefix
                    continue
                if digits <= hex_after or self.deleted[start + i]:
                    continue
                keys.append(head + digits)
                if len(keys) > limit:
                    break
            start = stop
        return keys[:limit], len(keys) > limit


def _bound(hex_prefix: str) -> int:
    """The smallest first word of a digest whose hex starts with ``hex_prefix``."""
    digits = (hex_prefix[:16] + "0" * 16)[:16]
    try:
        return int(digits, 16)
    except ValueError:
        return 0


class Endpoint(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, objects: Objects, latency: float, delete_rate: float) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.objects = objects
        self.latency = latency
        self.delete_rate = delete_rate
        self.tokens = delete_rate
        self.refilled = time.monotonic()
        self.real: dict[str, tuple[bytes, str]] = {}  # key: (body, last modified)
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def take_delete_token(self) -> bool:
        if self.delete_rate <= 0:
            return True
        with self.lock:
            now = time.monotonic()
            self.tokens = min(
                self.delete_rate, self.tokens + (now - self.refilled) * self.delete_rate
            )
            self.refilled = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Endpoint

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if "aws-chunked" in self.headers.get("Content-Encoding", ""):
            data = _unchunk(data)
        return data

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Date", formatdate(usegmt=True))
        self.send_header("x-amz-request-id", "synthetic")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>"
        ).encode()
        self._send(status, body, {"Content-Type": "application/xml"})

    def _dispatch(self) -> None:
        server = self.server
        if server.latency:
            time.sleep(server.latency)
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        _, _, key = unquote(split.path).lstrip("/").partition("/")
        method = self.command
        if method == "GET" and not key and query.get("list-type") == "2":
            server.counts["LIST"] += 1
            return self._list(query)
        if method == "GET" and not key and "uploads" in query:
            server.counts["LIST uploads"] += 1
            body = NO_UPLOADS
            return self._send(200, body, {"Content-Type": "application/xml"})
        if method == "POST" and "delete" in query:
            server.counts["DeleteObjects"] += 1
            body = self._body()
            if not server.take_delete_token():
                server.counts["SlowDown"] += 1
                return self._error(503, "SlowDown", "Please reduce your request rate.")
            return self._delete_many(body)
        if not key:
            server.counts[f"{method} bucket"] += 1
            return self._send(200)
        server.counts[f"{method} object"] += 1
        if method == "PUT":
            body = self._body()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            etag = f'"{hashlib.md5(body).hexdigest()}"'
            with server.lock:
                server.real[key] = (body, stamp)
            return self._send(200, b"", {"ETag": etag})
        if method == "DELETE":
            with server.lock:
                server.real.pop(key, None)
            return self._send(204)
        with server.lock:
            found = server.real.get(key)
        if found is None:
            return self._error(404, "NoSuchKey", "The specified key does not exist.")
        data, stamp = found
        modified = formatdate(
            time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")), usegmt=True
        )
        headers = {"ETag": f'"{hashlib.md5(data).hexdigest()}"', "Last-Modified": modified}
        return self._send(200, data, headers)

    def _list(self, query: dict[str, str]) -> None:
        server = self.server
        prefix = query.get("prefix", "")
        after = query.get("continuation-token") or query.get("start-after", "")
        limit = min(int(query.get("max-keys", "1000")), 1000)
        with server.lock:
            real = sorted(
                (k, v) for k, v in server.real.items() if k.startswith(prefix) and k > after
            )
        synthetic, more = server.objects.after(prefix, after, limit)
        entries = [(k, SIZE, MODIFIED) for k in synthetic]
        entries += [(k, len(body), stamp) for k, (body, stamp) in real]
        entries.sort()
        truncated = more or len(entries) > limit
        entries = entries[:limit]
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>',
            f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(entries)}</KeyCount>",
            f"<MaxKeys>{limit}</MaxKeys><IsTruncated>{str(truncated).lower()}</IsTruncated>",
        ]
        if truncated and entries:
            parts.append(f"<NextContinuationToken>{escape(entries[-1][0])}</NextContinuationToken>")
        parts.extend(
            f"<Contents><Key>{escape(k)}</Key><LastModified>{m}</LastModified>"
            f'<ETag>"0"</ETag><Size>{s}</Size><StorageClass>STANDARD</StorageClass></Contents>'
            for k, s, m in entries
        )
        parts.append("</ListBucketResult>")
        self._send(200, "".join(parts).encode(), {"Content-Type": "application/xml"})

    def _delete_many(self, body: bytes) -> None:
        server = self.server
        keys = [unquote(k.decode()) for k in _KEY_IN_DELETE.findall(body)]
        synthetic = [server.objects.index_of(k) for k in keys]
        with server.lock:
            for key, at in zip(keys, synthetic, strict=True):
                if at is not None:
                    server.objects.deleted[at] = True
                else:
                    server.real.pop(key, None)
            server.counts["keys deleted"] += len(keys)
        body = b'<?xml version="1.0" encoding="UTF-8"?><DeleteResult></DeleteResult>'
        self._send(200, body, {"Content-Type": "application/xml"})

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _dispatch


def _unchunk(data: bytes) -> bytes:
    """The payload of an aws-chunked body (size;chunk-signature...\\r\\ndata\\r\\n ... 0)."""
    out = bytearray()
    at = 0
    while at < len(data):
        end = data.index(b"\r\n", at)
        size = int(data[at:end].split(b";")[0], 16)
        if size == 0:
            break
        out += data[end + 2 : end + 2 + size]
        at = end + 2 + size + 2
    return bytes(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--delete-rate", type=float, default=0.0, help="DeleteObjects/s; 0: any")
    args = parser.parse_args(argv)
    endpoint = Endpoint(
        Objects(args.objects, args.seed, args.prefix), args.latency, args.delete_rate
    )
    thread = threading.Thread(target=endpoint.serve_forever, daemon=True)
    thread.start()
    print(f"port {endpoint.server_address[1]}", flush=True)
    try:
        sys.stdin.read()  # until the parent closes it, or goes
    finally:
        endpoint.shutdown()
        print(dict(endpoint.counts), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
