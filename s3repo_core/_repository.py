"""The ``Repository`` contract: what every repository implementation does.

The seed's Go interface in Python form. :func:`~s3repo_core.dial` returns one;
``S3Repository`` (``s3r://``) and ``FileRepository`` (``file://``) implement it, and
the contract suite (``tests/contract/``) runs the same tests against each. Every
method raises only :class:`~s3repo_core.RepositoryError` subclasses (and, where said,
the caller's own OSError or body exceptions).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from ._digest import Digest, File

if TYPE_CHECKING:
    from ._contents import RepositorySummary, StoredObject
    from ._report import CollectReport
    from ._verify import VerifyReport
    from .inventory import Inventory
    from .liveset import Liveset

__all__ = ["Body", "Destination", "Repository"]

#: What ``put`` and ``put_file`` take: bytes, or a readable binary stream.
Body = bytes | bytearray | memoryview | BinaryIO
#: Where ``get_file`` writes: a path, or an open binary file.
Destination = str | os.PathLike[str] | BinaryIO


@runtime_checkable
class Repository(Protocol):
    """A content-addressed repository: objects named by the SHA-256 of their bytes.

    **The guarantee every implementation keeps:** when ``put``, ``put_file``,
    ``put_files``, ``write_to`` or ``read_from`` returns, the object is stored, and no
    collection deletes it unless that collection started more than ``grace -
    refresh_window`` later and its liveset does not name the object.
    """

    @property
    def url(self) -> str:
        """The URL :func:`~s3repo_core.dial` opens this repository with again."""
        ...

    def short_string(self) -> str:
        """A short name for logs and tables, e.g. ``s3:bucket/prefix``."""
        ...

    def stat(self, digest: Digest | str) -> File:
        """The stored object's File. NotExistError if it is missing; InvalidArgumentError
        for a malformed digest."""
        ...

    def list_objects(self, shards: Sequence[str] | None = None) -> Iterator[StoredObject]:
        """Every stored object (digest, size, last modified) in digest order, streamed
        from the listing; only the hex ``shards`` (digest prefixes) if given."""
        ...

    def summary(self, *, by_shard: bool = False) -> RepositorySummary:
        """Counts and bytes of the objects and of every other area (uploads, leases,
        touch records, quarantine), from listings alone; per shard if asked."""
        ...

    def get(self, digest: Digest | str) -> BinaryIO:
        """A stream of the object's bytes, verified as read: reading to the end raises
        IntegrityError if they do not hash to ``digest``. NotExistError if missing."""
        ...

    def get_file(
        self,
        digest: Digest | str,
        dest: Destination,
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Write the object into ``dest``, verified; its size. A path is replaced only
        once the bytes verify; ``on_progress(count)`` is called as bytes arrive.
        NotExistError, IntegrityError; FileNotFoundError or IsADirectoryError for a
        destination path that cannot be written."""
        ...

    def put(self, body: Body) -> Digest:
        """Store ``body``; its digest. Content already stored is not written again; a
        put that fails publishes nothing. The body's own exceptions propagate."""
        ...

    def put_file(self, file: File, body: Body) -> None:
        """Store ``body`` as ``file``; IntegrityError, and nothing published, unless its
        bytes are ``file``'s. Nothing is read if ``file`` is stored already."""
        ...

    def put_files(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        on_hashed: Callable[[Path, File], None] | None = None,
        on_stored: Callable[[Path, File], None] | None = None,
        on_written: Callable[[Path, File], None] | None = None,
    ) -> list[File]:
        """Store the files at ``paths``; their Files, in order. A file that cannot be
        read raises its OSError; one that changes while stored, IntegrityError.
        Callbacks, from worker threads: ``on_hashed`` per path once hashed,
        ``on_stored`` per path once its content is stored, ``on_written`` once per
        content this call wrote (the first path holding it): the rest was stored."""
        ...

    def keep(self, files: Iterable[File | Digest | str]) -> list[File]:
        """Keep stored objects as a put of each would, without their bytes: on return the
        guarantee above holds for each as if it had been put when the call began. Their
        Files, each distinct object once, in order. NotExistError if one is missing;
        IntegrityError if a File's size differs."""
        ...

    def read_from(self, digest: Digest | str, url: str) -> None:
        """Copy the object from the repository at ``url`` into this one: streamed and
        verified, except between two ``s3r://`` repositories on one endpoint, which S3
        copies server-side (the bytes were verified when written; S3 does not hash
        them again). NotExistError if it is missing there; NotSupportedError for an
        unknown scheme."""
        ...

    def write_to(self, digest: Digest | str, url: str) -> None:
        """Copy the object from this repository to the one at ``url`` (see read_from)."""
        ...

    def verify(
        self,
        files: Iterable[File | Digest | str] | None = None,
        *,
        shards: list[str] | None = None,
        sample: float | None = None,
        quarantine: bool = False,
        on_checked: Callable[[Digest, int], None] | None = None,
    ) -> VerifyReport:
        """Hash stored objects again (every one, or ``files``; ``shards`` and a
        ``sample`` fraction restrict them) and report those corrupt, truncated (shorter
        than a File says) or missing; a mismatch a second read does not confirm is
        *unconfirmed*. ``quarantine`` moves confirmed corrupt objects to
        ``quarantine/`` under a collection lease (ConflictError if a collection holds
        the shard), so that a put stores them again. ``on_checked(digest, bytes)`` is
        called per object, from worker threads. InvalidArgumentError for a bad shard,
        sample or digest."""
        ...

    def collect(
        self,
        liveset: Liveset,
        *,
        threshold: datetime | None = None,
        dry_run: bool = False,
        shards: list[str] | None = None,
        keep_keys: bool = False,
        raise_on_errors: bool = True,
        inventory: Inventory | None = None,
    ) -> CollectReport:
        """Delete every object not in ``liveset`` and not modified after ``threshold``
        (default and newest allowed: ``grace`` ago; InvalidArgumentError if newer).
        ConflictError if another collection holds the shards; CollectionFailedError
        (with the report) if some keys could not be deleted. ``inventory`` (an S3
        Inventory report of the repository's bucket) proposes the candidates instead
        of a LIST of every shard; NotSupportedError where the store is not S3."""
        ...

    def enable_touch_records(self) -> None:
        """State that every collector of this repository reads touch records, so that
        writers keep stored content with one small write per batch instead of a refresh
        per object. Call it once no older s3repo collects the repository."""
        ...
