"""The benchmark's S3 servers, with a count of the requests each received.

A client-side count (a boto3 event) cannot see what another program sends, such as
s5cmd. So the cases that compare against s5cmd count on the server, for both sides:
each sample carries its timed section's start and end on the wall clock, and the tap
counts the requests that arrived in between. The worker and the server share the
machine's clock, and a side sends nothing between its stopwatch's start and end but
the requests under test.

- moto (in the runner's process, as ``devkit.localserver`` serves it): a WSGI layer in
  front of moto notes each request's arrival. It also offers the benchmark a fast path,
  ``POST FAST_PUT_PATH``, that stores many small objects straight into moto's models:
  writing 100,000 objects with a PUT each would take minutes per repetition; and
  ``POST FAST_COPY_PATH``, moto's CopyObject of every key under a prefix, so that each
  repetition of a re-ingest starts from a copy of the set as its writer stored it,
  rather than from 2,000 PUTs (``POST FAST_DELETE_PATH`` removes it after). And it
  serves the requests to buckets named ``SERIAL_BUCKETS...`` one at a time: moto's models
  are not thread-safe, and a LIST, which iterates the whole bucket, fails with a 500
  (KeyError) when a DeleteObjects removes a key meanwhile. Collecting 100,000 objects
  with parallel shards hit that ~45 times a run, and failed outright once.
- the JuiceFS gateway (a separate process): its MinIO admin trace, a stream with one
  entry per S3 request, read by a thread of the runner while a counted case runs.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from devkit.clocked_moto import CLOCK_PATH
from devkit.localserver import JuiceFSGateway, LocalS3, MotoServer, start_server

__all__ = [
    "FAST_COPY_PATH",
    "FAST_DELETE_PATH",
    "FAST_PUT_PATH",
    "SERIAL_BUCKETS",
    "CountedMoto",
    "Tap",
    "start_counted",
    "tap_for",
]

#: POST {"bucket": name, "objects": [[key, latin-1 body], ...]}: stored as PutObject would.
FAST_PUT_PATH = "/_bench/put-many"
#: POST {"bucket": name, "source": prefix, "target": prefix}: CopyObject of each key.
FAST_COPY_PATH = "/_bench/copy-prefix"
#: POST {"bucket": name, "source": prefix}: DeleteObject of each key.
FAST_DELETE_PATH = "/_bench/delete-prefix"
#: Requests to buckets whose name starts so are served one at a time (moto).
SERIAL_BUCKETS = "serial-"
_NOT_S3 = frozenset({CLOCK_PATH, FAST_PUT_PATH, FAST_COPY_PATH, FAST_DELETE_PATH})


class Tap:
    """Counts the S3 requests a server received; records only between start and stop."""

    #: Whether the server has the fast path (:data:`FAST_PUT_PATH`).
    fast_put = False

    def start(self) -> None:
        """Record from now on (what was recorded before is forgotten)."""

    def stop(self) -> None:
        """Stop recording; counts stay available."""

    def count(self, windows: Iterable[tuple[float, float]]) -> list[int]:
        """How many requests arrived within each (start, end) wall-clock window."""
        raise NotImplementedError(f"{type(self).__name__} cannot count requests")


def _within(arrivals: list[float], windows: Iterable[tuple[float, float]]) -> list[int]:
    return [sum(1 for at in arrivals if start <= at <= end) for start, end in windows]


class _MotoApp:
    """WSGI layer in front of moto: notes arrivals, and serves the fast path."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.recording = False
        self.arrivals: list[float] = []  # list.append is atomic: the server's threads share it
        self._serial = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path in (FAST_PUT_PATH, FAST_COPY_PATH, FAST_DELETE_PATH):
            return self._fast(path, environ, start_response)
        if self.recording and path not in _NOT_S3:
            self.arrivals.append(time.time())
        if not path.lstrip("/").startswith(SERIAL_BUCKETS):
            return self.app(environ, start_response)
        with self._serial:  # the whole answer, body included, within the lock
            answer = self.app(environ, start_response)
            try:
                return [b"".join(answer)]
            finally:
                if hasattr(answer, "close"):
                    answer.close()

    def _fast(self, path: str, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        from moto.s3.models import s3_backends

        length = int(environ.get("CONTENT_LENGTH") or 0)
        spec = json.loads(environ["wsgi.input"].read(length))
        bucket = spec["bucket"]
        partition, account = s3_backends.bucket_accounts[bucket]
        backend = s3_backends[account][partition]
        done = 0
        if path == FAST_PUT_PATH:
            for key, body in spec["objects"]:
                backend.put_object(bucket, key, body.encode("latin-1"), disable_notification=True)
                done += 1
        else:
            source = spec["source"]
            keys = backend.get_bucket(bucket).keys
            for key in [key for name, key in list(keys.items()) if name.startswith(source)]:
                if path == FAST_COPY_PATH:
                    backend.copy_object(key, bucket, spec["target"] + key.name[len(source) :])
                else:
                    backend.delete_object(bucket, key.name)
                done += 1
        data = json.dumps({"done": done}).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]


class _MotoTap(Tap):
    fast_put = True

    def __init__(self, app: _MotoApp) -> None:
        self.app = app

    def start(self) -> None:
        self.app.arrivals = []
        self.app.recording = True

    def stop(self) -> None:
        self.app.recording = False

    def count(self, windows: Iterable[tuple[float, float]]) -> list[int]:
        return _within(list(self.app.arrivals), windows)


class CountedMoto(MotoServer):
    """devkit's moto server (movable clock, in this process) behind :class:`_MotoApp`."""

    layer: _MotoApp

    def start(self) -> CountedMoto:
        if self.running:
            return self
        super().start()
        # werkzeug's server looks up its app for each request: wrapping it now is enough.
        self.layer = _MotoApp(self._server.app)
        self._server.app = self.layer
        return self


def _trace_time(text: str) -> float:
    """Epoch seconds of a trace entry's RFC 3339 time (nanoseconds cut to micro)."""
    stamp, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{stamp}.{(fraction + '000000')[:6]}+00:00").timestamp()


class _TraceTap(Tap):
    """The JuiceFS gateway's MinIO admin trace (``/minio/admin/v3/trace``), one JSON
    entry per S3 request, kept raw by a reader thread and parsed when counted."""

    def __init__(self, server: LocalS3) -> None:
        self.server = server
        self.lines: list[bytes] = []
        self._conn: http.client.HTTPConnection | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        self.stop()
        self.lines = []
        path = "/minio/admin/v3/trace?s3=true"
        request = AWSRequest(method="GET", url=self.server.endpoint_url + path)
        credentials = Credentials(self.server.access_key, self.server.secret_key)
        S3SigV4Auth(credentials, "s3", self.server.region).add_auth(request)
        url = urlsplit(self.server.endpoint_url)
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
        conn.request("GET", path, headers=dict(request.headers))
        response = conn.getresponse()
        if response.status != 200:
            refusal = f"{response.status} {response.read()!r}"
            raise RuntimeError(f"the gateway refused its trace: {refusal}")
        if conn.sock is not None:
            conn.sock.settimeout(None)  # the stream is quiet while nothing is sent
        self._conn = conn

        def read() -> None:
            try:
                for line in iter(response.readline, b""):
                    self.lines.append(line)
            except Exception:
                pass  # stop() closed the connection (http.client may fail in any way then)

        self._reader = threading.Thread(target=read, name="juicefs-trace", daemon=True)
        self._reader.start()

    def stop(self) -> None:
        if self._conn is not None:
            if self._conn.sock is not None:
                with contextlib.suppress(OSError):  # closed already
                    self._conn.sock.shutdown(socket.SHUT_RDWR)
            self._conn.close()
            self._conn = None
        if self._reader is not None:
            self._reader.join(10)
            self._reader = None

    def _fence(self) -> None:
        """Wait until the trace shows a request sent now: every earlier one is in it."""
        token, seen = uuid.uuid4().hex, len(self.lines)
        client = self.server.client()
        # No such bucket: the answer does not matter, its trace entry does.
        with contextlib.suppress(Exception):
            client.head_object(Bucket=f"bench-fence-{token[:20]}", Key=token)
        deadline = time.monotonic() + 30
        while not any(token.encode() in line for line in self.lines[seen:]):
            if time.monotonic() > deadline:
                raise RuntimeError("the JuiceFS trace stream lost its entries")
            time.sleep(0.02)

    def count(self, windows: Iterable[tuple[float, float]]) -> list[int]:
        self._fence()
        arrivals = []
        for line in list(self.lines):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if str(entry.get("funcname", "")).startswith("s3.") and "time" in entry:
                arrivals.append(_trace_time(entry["time"]))
        return _within(arrivals, windows)


def tap_for(server: LocalS3) -> Tap:
    """The tap of a running server: a :class:`CountedMoto`'s layer, a JuiceFS gateway's
    trace, else one that cannot count."""
    if isinstance(server, CountedMoto):
        return _MotoTap(server.layer)
    if isinstance(server, JuiceFSGateway):
        return _TraceTap(server)
    return Tap()


def start_counted(name: str) -> tuple[LocalS3, Tap]:
    """Start the server ``name`` ('moto' or 'juicefs') and the tap that counts its requests."""
    server = CountedMoto().start() if name == "moto" else start_server(name)
    return server, tap_for(server)
