"""Fixtures: real S3 servers on 127.0.0.1, started and stopped by the test session.

``s3server`` is parametrized over every S3 implementation we support, so any test that
uses it (directly or through ``repo``/``bucket``) is part of the conformance suite and
runs once per server. Set ``S3REPO_TEST_SERVERS=moto`` to run against a subset.

Tests age objects with ``s3server.let_time_pass(seconds)``: moto's clock moves forward
at once (devkit.clocked_moto), the JuiceFS gateway's is waited for. Each test starts on
real time: a moved clock is reset after the test.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devkit.localserver import LocalS3, server_processes, start_server
from s3repo_core import S3Repository, set_client

SERVERS = [s for s in os.environ.get("S3REPO_TEST_SERVERS", "moto,juicefs").split(",") if s]

# Every process this session starts, and every server process they start, inherits this
# mark: at the end the session looks for server processes that carry it
# (pytest_sessionfinish): JuiceFS gateways and standalone devkit.clocked_moto servers.
_SESSION_MARK = ("S3REPO_TEST_SESSION", uuid.uuid4().hex)
os.environ[_SESSION_MARK[0]] = _SESSION_MARK[1]

_running: dict[str, LocalS3] = {}


def _server(name: str) -> LocalS3:
    if name not in _running:
        _running[name] = start_server(name)
    return _running[name]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for server in _running.values():
        server.stop()
    _running.clear()
    # No test may leave a server process behind: fail the session if one did (and stop it).
    leftover = server_processes("=".join(_SESSION_MARK))
    if leftover:
        for pid in leftover:
            os.kill(pid, signal.SIGTERM)
        print(
            f"\nconftest: FAILED: the session left server processes running: "
            f"{leftover} (now stopped)",
            file=sys.stderr,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _real_time_again() -> Iterator[None]:
    """A test that moved a server's clock leaves it on real time for the next one."""
    yield
    for server in _running.values():
        server.reset_clock()


@pytest.fixture(scope="session", params=SERVERS)
def s3server(request: pytest.FixtureRequest) -> LocalS3:
    """A running S3 server (one per implementation, shared by the session)."""
    return _server(request.param)


@pytest.fixture(scope="session")
def moto_server() -> LocalS3:
    """moto's server alone, for tests that are about our code, not the server."""
    return _server("moto")


@pytest.fixture
def client(s3server: LocalS3) -> Any:
    return s3server.client()


@pytest.fixture
def bucket(s3server: LocalS3, client: Any) -> Iterator[str]:
    """A fresh bucket on ``s3server``, with its client set for s3repo."""
    name = s3server.create_bucket()
    set_client(client, bucket=name)
    yield name
    set_client(None, bucket=name)


@pytest.fixture
def moto_bucket(moto_server: LocalS3) -> Iterator[str]:
    """A fresh bucket on the session's moto server, with its client set for s3repo: for
    tests of our code rather than of a server."""
    name = moto_server.create_bucket()
    set_client(moto_server.client(), bucket=name)
    yield name
    set_client(None, bucket=name)


@pytest.fixture
def repo(bucket: str) -> S3Repository:
    """A repository with a prefix in a fresh bucket, with small parts so tests stay fast."""
    return S3Repository(bucket, "some/prefix", part_size=5 * 1024 * 1024)


class MemoryRepository:
    """A repository in a dict: another scheme, to test copies that stream through."""

    def __init__(self, store: dict[str, bytes]) -> None:
        self.store = store

    def stat(self, digest: Any) -> Any:
        from s3repo_core import File, NotExistError

        if str(digest) not in self.store:
            raise NotExistError(str(digest))
        return File(digest, len(self.store[str(digest)]))

    def get(self, digest: Any) -> Any:
        import io

        return io.BytesIO(self.store[str(digest)])

    def put_file(self, file: Any, body: Any) -> None:
        self.store[str(file.digest)] = body.read()


@pytest.fixture
def memory_scheme() -> Iterator[dict[str, bytes]]:
    """Registers ``mem://`` for the test; yields the dict behind it."""
    from s3repo_core import register_scheme
    from s3repo_core._dial import _schemes

    store: dict[str, bytes] = {}
    register_scheme("mem", lambda url: MemoryRepository(store))
    yield store
    _schemes.pop("mem", None)
