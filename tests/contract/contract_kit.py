"""What the contract suite needs to know of each implementation, and nothing more.

An :class:`Impl` is one repository under test plus the few things a test must do
*behind* the repository's back, which differ by implementation: overwrite a stored
object, put a key the repository never would, age what is stored, list everything the
storage holds, count the object bytes written. What an implementation cannot do is
declared in :attr:`Impl.lacks`, with the reason, and the tests that need it skip; where
it is known to break the contract, :attr:`Impl.deviations` says how, and the test runs
as a strict xfail, so that a fix shows. No test has a copy per implementation.

Keys are store keys (``<prefix>/objects/sha256:<hex>``): a bucket's keys, or a
directory's file paths relative to its root, which is the same thing (``_directory``).
The S3 repositories have a prefix, the file repositories none (their root is the
directory, as ``file:///abs/dir`` names it).
"""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from devkit.localserver import LocalS3
from s3repo_core import Digest, FileRepository, Repository, S3Repository, set_client

MiB = 1024 * 1024

# Short windows, so that collection tests age objects past grace in seconds. A writer
# keeps what it stored within refresh_window of returning, so refresh_window must
# outlast a pass of refreshes on a busy machine (the suite runs in four workers on two
# cores): at 0.2 s, writers under load could not, and failed with UnavailableError.
WINDOWS: dict[str, timedelta] = {
    "refresh_window": timedelta(seconds=1),
    "settle": timedelta(milliseconds=400),
    "grace": timedelta(seconds=3, milliseconds=500),
}
# Past grace, plus a second each for whole-second Last-Modified and Date (S3 servers),
# and a second for a busy machine.
AGE = 6.6

#: Capabilities a test may require (see Impl.require).
UPLOADS = "uploads"  # writers leave upload keys that collection sweeps
TRANSPORT = "transport"  # reads cross a network a proxy can damage (tests/faultproxy.py)
#: Contract points an implementation may be known to break (see Impl.expect_contract).
VERIFIED_COPY = "verified-copy"


def payload(size: int, seed: int = 0) -> bytes:
    """``size`` random bytes, distinct per seed (so that content is never shared)."""
    return (seed.to_bytes(4, "big") + os.urandom(size))[:size] if size else b""


class UnknownLength(io.RawIOBase):
    """A stream that can only be read: no seek, no tell, no length, ragged reads."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._fail_after = fail_after
        self._step = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise ConnectionResetError("the producer died mid-stream")
        self._step += 1
        n = min(len(buffer), 65536 + 977 * (self._step % 7), len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


class Unreadable(io.RawIOBase):
    """A body that must not be read: reading it fails the test."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("the body of content already stored must not be read")


@dataclass
class Written:
    """Object bytes sent to the store while :meth:`Impl.count_writes` was open."""

    bytes: int = 0


class Impl:
    """One implementation of the contract under test, on storage of its own."""

    #: The implementation's name, as in test ids: 'moto', 'juicefs', 'file'.
    kind: str
    #: The repository under test, with the short :data:`WINDOWS`.
    repo: Repository
    #: Its prefix ("" for none).
    prefix: str
    #: Capabilities this implementation lacks, each with the reason.
    lacks: ClassVar[Mapping[str, str]] = {}
    #: Contract points this implementation is known to break, each with how.
    deviations: ClassVar[Mapping[str, str]] = {}

    def __init__(self, kind: str, maker: Implementations) -> None:
        self.kind = kind
        self._maker = maker
        self.repo = self.make(**WINDOWS)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.repo.url}>"

    # -- what every implementation gives ------------------------------------------------

    def make(self, prefix: str | None = None, **options: Any) -> Repository:
        """Another repository object on this storage, at ``prefix`` (default: the
        repository's), with ``options``."""
        raise NotImplementedError

    def stored_keys(self) -> list[str]:
        """Everything the storage holds, sorted: every key, and what a failed write could
        leave (a directory's temporary files; a bucket's open multipart uploads, as
        ``multipart:<key>``). Only the storage's own bookkeeping is left out."""
        raise NotImplementedError

    def write_key(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key`` (below the repository's prefix) behind the
        repository's back; the store key."""
        raise NotImplementedError

    def age(self, seconds: float) -> None:
        """Make everything stored look ``seconds`` older on the store's clock; what is
        written afterwards is young. Only while no collection runs."""
        raise NotImplementedError

    @contextmanager
    def count_writes(self) -> Iterator[Written]:
        """Count the object bytes the repositories on this storage send to it."""
        raise NotImplementedError
        yield Written()

    # -- built on those -----------------------------------------------------------------

    def key(self, digest: Digest) -> str:
        """The store key of ``digest``'s object."""
        return self.store_key(f"objects/{digest}")

    def store_key(self, key: str) -> str:
        """The store key of ``key`` below the repository's prefix."""
        return f"{self.prefix}/{key}" if self.prefix else key

    def object_keys(self) -> list[str]:
        return [key for key in self.stored_keys() if key.startswith(self.store_key("objects/"))]

    def tamper(self, digest: Digest, data: bytes) -> None:
        """Overwrite ``digest``'s stored object with ``data``, behind the repository's back."""
        self.write_key(f"objects/{digest}", data)

    def stray_key(self, name: str, data: bytes = b"?") -> str:
        """Put ``objects/<name>``, a key no repository writes; its store key."""
        return self.write_key(f"objects/{name}", data)

    def sibling(self) -> Impl:
        """An implementation of the same kind on fresh storage (for copies)."""
        return self._maker.make(self.kind)

    def foreign(self) -> Impl:
        """An implementation of another kind on fresh storage: file:// for S3, S3 for
        file:// (skips if no S3 server is enabled)."""
        return self._maker.make(self._maker.foreign_kind(self.kind))

    def require(self, capability: str) -> None:
        """Skip the test, with the reason, if this implementation lacks ``capability``."""
        if capability in self.lacks:
            pytest.skip(f"{self.kind} lacks {capability}: {self.lacks[capability]}")

    def expect_contract(self, request: pytest.FixtureRequest, point: str) -> None:
        """Mark the test a strict xfail if this implementation is known to break ``point``."""
        if point in self.deviations:
            reason = f"{self.kind} breaks the contract ({point}): {self.deviations[point]}"
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))


class S3Impl(Impl):
    """An S3Repository in a fresh bucket on one of the session's servers."""

    deviations: ClassVar[Mapping[str, str]] = {
        VERIFIED_COPY: (
            "read_from/write_to between two s3r:// repositories on one endpoint copy "
            "server-side (S3Repository.copy_from) and never read the bytes, so a corrupt "
            "source object is copied as is (Repository.read_from declares this exception)"
        ),
    }

    def __init__(
        self, kind: str, maker: Implementations, server: LocalS3, bucket: str, client: Any
    ) -> None:
        self.server, self.bucket, self.client = server, bucket, client
        self.prefix = "contract"
        super().__init__(kind, maker)

    def make(self, prefix: str | None = None, **options: Any) -> Repository:
        prefix = self.prefix if prefix is None else prefix
        return S3Repository(self.bucket, prefix, part_size=5 * MiB, **options)

    def stored_keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        found = [item["Key"] for page in pages for item in page.get("Contents", [])]
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return sorted(found + [f"multipart:{upload['Key']}" for upload in uploads])

    def write_key(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=self.store_key(key), Body=data)
        return self.store_key(key)

    def age(self, seconds: float) -> None:
        # The server's clock moves forward where it can (moto); elsewhere we wait.
        if getattr(self.server, "clock_movable", False) and hasattr(self.server, "advance_clock"):
            self.server.advance_clock(seconds)
        else:
            time.sleep(seconds)

    @contextmanager
    def count_writes(self) -> Iterator[Written]:
        written = Written()

        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            if model.name not in ("PutObject", "UploadPart"):
                return  # copies (refreshes) send no object bytes
            body = params.get("body")
            if isinstance(body, bytes | bytearray):
                written.bytes += len(body)
            elif body is not None and hasattr(body, "seek"):
                position = body.tell()
                body.seek(0, 2)
                written.bytes += body.tell() - position
                body.seek(position)

        events = self.client.meta.events
        events.register("before-call.s3", record)
        try:
            yield written
        finally:
            events.unregister("before-call.s3", record)


class FileImpl(Impl):
    """A FileRepository in a fresh directory; a file's mtime is its Last-Modified."""

    lacks: ClassVar[Mapping[str, str]] = {
        TRANSPORT: "a directory is read with no network in between to damage the bytes",
    }

    def __init__(self, kind: str, maker: Implementations, root: Path) -> None:
        self.root = root
        self.prefix = ""
        super().__init__(kind, maker)

    def make(self, prefix: str | None = None, **options: Any) -> Repository:
        prefix = self.prefix if prefix is None else prefix
        return FileRepository(self.root, prefix, create=True, **options)

    def stored_keys(self) -> list[str]:
        return sorted(
            Path(directory, name).relative_to(self.root).as_posix()
            for directory, _, names in os.walk(self.root)
            for name in names
        )

    def write_key(self, key: str, data: bytes) -> str:
        path = self.root / self.store_key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return self.store_key(key)

    def age(self, seconds: float) -> None:
        # The protocol's clock is the mtime: set every file's back (leases included, but
        # no collection runs now).
        back = round(seconds * 1e9)
        for directory, _, names in os.walk(self.root):
            for name in names:
                path = os.path.join(directory, name)
                st = os.stat(path, follow_symlinks=False)
                times = (st.st_atime_ns - back, st.st_mtime_ns - back)
                os.utime(path, ns=times, follow_symlinks=False)

    @contextmanager
    def count_writes(self) -> Iterator[Written]:
        # Every repository on this directory writes objects through DirectoryStore.put
        # (bytes) or .publish (a temporary file): count those that land under objects/.
        from s3repo_core._directory import DirectoryStore

        written = Written()
        objects = self.store_key("objects/")
        put, publish = DirectoryStore.put, DirectoryStore.publish

        def counting_put(store: DirectoryStore, key: str, data: bytes, *args: Any) -> Any:
            if key.startswith(objects) and store.root == self.root:
                written.bytes += len(data)
            return put(store, key, data, *args)

        def counting_publish(store: DirectoryStore, temp: Any, key: str) -> None:
            if key.startswith(objects) and store.root == self.root:
                written.bytes += os.path.getsize(temp)
            publish(store, temp, key)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(DirectoryStore, "put", counting_put)
            patch.setattr(DirectoryStore, "publish", counting_publish)
            yield written


_clients: dict[int, Any] = {}


def _client_of(server: LocalS3) -> Any:
    """One client per server for the session: making a boto3 client takes a while."""
    if id(server) not in _clients:
        _clients[id(server)] = server.client()
    return _clients[id(server)]


class Implementations:
    """Makes the Impls of one test, each on fresh storage, and cleans up after them."""

    def __init__(
        self,
        kinds: list[str],
        server: Callable[[str], LocalS3],
        directory: Path,
        cleanup: ExitStack,
    ) -> None:
        self.kinds = kinds
        self._server = server
        self._directory = directory
        self._cleanup = cleanup
        self._count = 0

    def foreign_kind(self, kind: str) -> str:
        if kind != "file":
            return "file"
        servers = [k for k in self.kinds if k != "file"]
        if not servers:
            pytest.skip("no S3 server to copy to or from: S3REPO_TEST_SERVERS names none")
        return servers[0]

    def make(self, kind: str) -> Impl:
        self._count += 1
        if kind == "file":
            return FileImpl(kind, self, self._directory / f"repo-{self._count}")
        server = self._server(kind)
        client = _client_of(server)
        bucket = f"contract-{uuid.uuid4().hex[:20]}"
        client.create_bucket(Bucket=bucket)
        set_client(client, bucket=bucket)
        self._cleanup.callback(set_client, None, bucket=bucket)
        return S3Impl(kind, self, server, bucket, client)
