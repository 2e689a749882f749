"""moto's S3 server with a clock that tests move forward, so objects age without waiting.

S3 measures ages on the server's clock: the ``Date`` header of a response minus an
object's ``Last-Modified``, and the repository does the same. This server shifts both
by one offset, which only grows until it is reset::

    POST /_devkit/clock?advance=SECONDS   move the clock SECONDS (>= 0) forward
    POST /_devkit/clock?reset=1           back to real time
    GET  /_devkit/clock                   how far ahead it is

Each answers ``{"offset": seconds}`` in JSON (no S3 bucket can be called ``_devkit``).
After an advance, what was stored before it is older by that much and what is stored
next is as young as ever. The offset applies to the ``Date`` header of every response
and to every time moto stamps (``LastModified`` of objects and delete markers...);
moto reports every multipart upload as initiated in 2010 whatever the clock.

The clock is the process's: moto's models are global, and :func:`install` makes moto's
``utcnow`` follow it. :class:`devkit.localserver.MotoServer` serves in a thread of the
process that starts it (the tests', whose clients only speak HTTP to it); to serve
alone::

    python -m devkit.clocked_moto [--port N]

prints ``listening on http://127.0.0.1:N`` when it is ready, and serves until SIGTERM
or Ctrl-C.

A collection's lease is judged by its age too, while its heartbeats are timed by this
process's monotonic clock: advance only while no collection runs, or a live lease
looks dead.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

__all__ = ["CLOCK_PATH", "Clock", "clock", "install", "main", "make_server"]

CLOCK_PATH = "/_devkit/clock"


class Clock:
    """Real time plus an offset that only grows until :meth:`reset`; thread-safe."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        """Seconds this clock is ahead of real time."""
        return self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock ``seconds`` forward; the new offset. ValueError if negative."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"a clock only moves forward, not by {seconds!r} seconds")
        with self._lock:
            self._offset += seconds
            return self._offset

    def reset(self) -> None:
        """Back to real time."""
        with self._lock:
            self._offset = 0.0

    def time(self) -> float:
        """Like :func:`time.time`, on this clock."""
        return time.time() + self._offset


#: The clock of this process's moto (see :func:`install`).
clock = Clock()
_installed = False


def install() -> Clock:
    """Make moto's ``utcnow`` follow :data:`clock` in this process (idempotent).

    moto stamps objects with ``moto.core.utils.utcnow``, which its modules import by
    name: the function is replaced there and in every moto module already imported
    (the S3 ones are imported first); modules imported later import the new one.
    """
    global _installed
    if _installed:
        return clock
    import moto.core.utils

    real = moto.core.utils.utcnow

    def utcnow() -> datetime:
        return real() + timedelta(seconds=clock.offset)

    moto.core.utils.utcnow = utcnow
    # The modules that stamp S3's times, imported now so that they are patched below.
    import moto.core.responses
    import moto.s3.models
    import moto.s3.responses

    for name, module in list(sys.modules.items()):
        if name.startswith("moto.") and getattr(module, "utcnow", None) is real:
            module.utcnow = utcnow  # type: ignore[attr-defined]
    _installed = True
    return clock


class _ClockRoute:
    """WSGI middleware: :data:`CLOCK_PATH` moves the clock, anything else goes to moto."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != CLOCK_PATH:
            return self.app(environ, start_response)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        method = environ.get("REQUEST_METHOD")
        status = "200 OK"
        try:
            if method == "POST" and "reset" in query:
                clock.reset()
            elif method == "POST" and "advance" in query:
                clock.advance(float(query["advance"][0]))
            elif method != "GET":
                raise ValueError(f"POST {CLOCK_PATH}?advance=SECONDS or ?reset=1, or GET it")
            body = {"offset": clock.offset}
        except ValueError as exc:
            status, body = "400 Bad Request", {"error": str(exc)}
        data = json.dumps(body).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        start_response(status, headers)
        return [data]


def make_server(host: str = "127.0.0.1", port: int = 0) -> Any:
    """A threaded werkzeug server of moto's S3 on the clock (not serving yet).

    Call its ``serve_forever()``, then ``shutdown()`` and ``server_close()``; its
    ``server_address`` has the port (a free one for ``port=0``).
    """
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server as werkzeug_server

    install()

    class Handler(MotoRequestHandler):
        def date_time_string(self, timestamp: float | None = None) -> str:
            # The Date header of every response (werkzeug sends it, not moto).
            return super().date_time_string(clock.time() if timestamp is None else timestamp)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    app = _ClockRoute(DomainDispatcherApplication(create_backend_app))
    return werkzeug_server(host, port, app, threaded=True, request_handler=Handler)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.clocked_moto",
        description=f"Serve moto's S3 with a clock moved by POST {CLOCK_PATH}?advance=SECONDS.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args(None if argv is None else list(argv))
    server = make_server(args.host, args.port)

    def stop(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever(), which runs in this (the main) thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
