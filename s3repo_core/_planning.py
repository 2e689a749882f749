"""Planning a garbage collection: the liveset to keep, and the threshold to keep after.

:func:`plan_collection` does what every collection against manifests must do before
it deletes anything, in one place, so that neither the Dagster job nor a library user
does it by hand:

1. it reads every manifest's footer, failing closed: if any is missing or bad, there
   is no plan (an empty or partial liveset would delete live objects). It pins each to
   the version read and reads no rows: the plan stays small whatever the liveset's
   size, and each worker reads only its shard's slice of the liveset, of exactly those
   versions (:meth:`PlannedCollection.read_liveset`), or fails closed in its turn;
2. it fixes the threshold as ``min(oldest snapshot, now) - grace``, in whole seconds:
   a producer may have stored objects since its snapshot was written that only its
   next snapshot will name. A record's age holds nothing back (its objects were
   stored before it, and it was written promptly, see ``records``); "now" is read
   on the store's clock before the first manifest is, so a record that lands while
   the manifests are read keeps its objects through the grace;
3. it refuses a grace shorter than the repository's, and a snapshot from the future
   by the store's clock (the repository's ``collect`` also checks the threshold
   against that clock);
4. it names the shards, so that workers can collect one each against the same plan.

The plan is a value (it pickles, so it can travel to other processes)::

    plan = plan_collection(repo, ["s3://bucket/manifests/"])
    report = repo.collect(plan.read_liveset(), threshold=plan.threshold, dry_run=True)

Of the repository it uses only ``grace``, ``str()``, ``server_now()`` if it has one
(the store's clock), and, for manifests in S3, the ``client`` attribute of a
repository that has one; so it plans for any repository that has a ``collect``, not
only for S3.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from ._errors import InvalidArgumentError
from ._keeper import CLOCK_RESOLUTION
from ._liveset_slices import SliceRead, read_footers, read_pinned_liveset
from ._shards import shard_names
from .liveset import BloomLiveset, ExactLiveset
from .manifest import ManifestInfo

__all__ = ["PlannedCollection", "plan_collection", "suggested_shard_width"]

#: Live rows below which one worker collects a repository in minutes: ``bench.scale``
#: measured one worker at about 33,000 keys a second (100 ms LISTs), so that 10 million
#: objects, half of them live, took 5.1 minutes (and its exact liveset 153 MiB).
ONE_WORKER_ROWS = 5_000_000
#: Live rows from which 256 shards (two hex digits) spread the work better than 16.
WIDE_ROWS = 50_000_000


def suggested_shard_width(live_rows: int) -> int:
    """How finely to split the collection of a repository whose liveset has
    ``live_rows`` rows: 0 (one worker, its 16 shards in threads), 1 (a worker per shard
    of 16) or 2 (256 shards, for 16 or more workers); see ONE_WORKER_ROWS."""
    if live_rows < ONE_WORKER_ROWS:
        return 0
    return 1 if live_rows < WIDE_ROWS else 2


class _Planned(Protocol):
    """What planning needs of a repository: its grace (and ``str()``, for the plan).

    A repository with a ``server_now()`` has its store's clock read too."""

    @property
    def grace(self) -> timedelta: ...


def _now(repo: _Planned) -> datetime:
    """The store's clock, which object ages are measured by, if the repository tells
    it; else this process's."""
    server_now = getattr(repo, "server_now", None)
    return server_now() if callable(server_now) else datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PlannedCollection:
    """What every part of one collection collects against: the same liveset and threshold.

    Collect one shard of :attr:`shards` per worker, or all at once::

        live = plan.read_liveset(shards)
        repo.collect(live, threshold=plan.threshold, shards=shards)
    """

    #: The repository planned for, as ``str(repo)`` (its URL).
    repository: str
    #: Each manifest (location, rows, creation time, creator, the version read), in
    #: reading order: the liveset is their union.
    manifests: tuple[ManifestInfo, ...]
    #: Rows over all the manifests (a digest listed twice counts twice).
    live_rows: int
    #: The creation time of the oldest manifest, of either kind.
    oldest_manifest: datetime
    #: How long before ``held_at`` objects are kept whatever the liveset says.
    grace: timedelta
    #: ``held_at - grace`` in whole seconds: what was modified after it is kept.
    threshold: datetime
    #: What the threshold counts back from: the oldest snapshot, or the store's time
    #: when the manifests began to be read if that is earlier (or there is no snapshot).
    held_at: datetime
    #: The shards a collection of the whole repository covers (see ``shard_names``).
    shards: tuple[str, ...]
    #: When the plan was made, by this process's clock.
    planned_at: datetime
    #: How the liveset is held: ``"exact"`` or ``"bloom"`` (at ``fp_rate``).
    liveset_kind: Literal["exact", "bloom"] = "exact"
    fp_rate: float = 0.01

    def read_liveset(
        self, shards: Sequence[str] | None = None, *, client: Any = None
    ) -> ExactLiveset | BloomLiveset:
        """The liveset, or only its digests in ``shards``: all a collection of those
        shards asks about. See :meth:`read_liveset_slice`."""
        return self.read_liveset_slice(shards, client=client)[0]

    def read_liveset_slice(
        self, shards: Sequence[str] | None = None, *, client: Any = None
    ) -> tuple[ExactLiveset | BloomLiveset, SliceRead]:
        """The liveset of ``shards`` (None: all), read from the manifests as planned,
        and what was read for it: only the row groups of sorted manifests that can
        hold digests of ``shards``. Manifests in S3 are read with ``client`` (default:
        each bucket's). Fails closed: a manifest replaced or removed since it was
        planned (ConflictError, NotExistError) or a bad row raises; plan again."""
        return read_pinned_liveset(
            self.manifests,
            shards=shards,
            kind=self.liveset_kind,
            fp_rate=self.fp_rate,
            client=client,
        )

    @property
    def locations(self) -> tuple[str, ...]:
        """Where each manifest read is."""
        return tuple(info.location for info in self.manifests)

    def summary(self) -> str:
        """One line: what the liveset holds and what the threshold keeps."""
        records = sum(1 for info in self.manifests if info.kind == "record")
        return (
            f"{self.repository}: {self.live_rows} live rows from {len(self.manifests)} "
            f"manifests ({records} records, {len(self.manifests) - records} snapshots); "
            f"keeping whatever was modified after {self.threshold.isoformat()}; "
            f"{len(self.shards)} shards"
        )


def _check_manifests(manifests: Sequence[str | os.PathLike[str]]) -> list[str | os.PathLike[str]]:
    if isinstance(manifests, str | bytes | os.PathLike):
        raise InvalidArgumentError(
            f"manifests is a list of locations, not one: give [{manifests!r}]"
        )
    try:
        locations = list(manifests)
    except TypeError:
        raise InvalidArgumentError(
            f"manifests is a list of locations, got {type(manifests).__name__}"
        ) from None
    if not locations:
        raise InvalidArgumentError("no manifests given: collection needs a liveset")
    return locations


def _check_grace(grace: timedelta | None, repository_grace: timedelta) -> timedelta:
    if grace is None:
        return repository_grace
    if not isinstance(grace, timedelta):
        raise InvalidArgumentError(f"grace must be a timedelta, got {type(grace).__name__}")
    if grace < repository_grace:
        raise InvalidArgumentError(
            f"grace {grace.total_seconds():g} s is shorter than the repository's grace "
            f"({repository_grace.total_seconds():g} s); writers could lose objects"
        )
    return grace


def plan_collection(
    repo: _Planned,
    manifests: Sequence[str | os.PathLike[str]],
    *,
    grace: timedelta | None = None,
    liveset: Literal["exact", "bloom"] = "exact",
    fp_rate: float = 0.01,
    shard_width: int = 1,
    records: Sequence[str | os.PathLike[str]] = (),
    client: Any = None,
) -> PlannedCollection:
    """Read the liveset from ``manifests`` and fix the threshold of a collection of ``repo``.

    ``manifests`` is a list of locations, each a manifest path, an ``s3://bucket/key``,
    a local directory or an ``s3://bucket/prefix/`` (ending in '/', meaning every
    ``*.parquet`` under it), as :func:`~s3repo_core.read_liveset_with_info` reads them.
    ``grace`` (default: the repository's) is how long before the oldest manifest
    whatever was modified is kept; it may not be shorter than the repository's.
    ``liveset`` is ``"exact"`` (32 bytes per live digest) or ``"bloom"`` (about 1.2
    bytes at ``fp_rate`` 1%; a false positive only keeps some garbage until a later
    collection): how :meth:`PlannedCollection.read_liveset` will hold it.
    ``shard_width`` (1 to 4 hex digits) sets :attr:`PlannedCollection.shards`.
    ``records`` are locations of record manifests that may hold none yet (where an IO
    manager writes them); ``manifests`` may not be empty, so that no collection runs
    against records alone (whatever else was stored would go). Manifests in S3 are
    read with ``client``, by default the repository's ``client`` if it has one (else
    the client set for each bucket).

    Raises InvalidArgumentError for a bad argument (checked before any manifest is read),
    a grace shorter than the repository's, a bad manifest footer, or a snapshot written
    in the future by the store's clock; NotExistError if a manifest, or any under a
    directory or prefix, is missing; and what reading from S3 raises (translated).
    No plan is returned unless every manifest's footer was read.
    """
    locations = _check_manifests(manifests)
    if isinstance(records, str | bytes | os.PathLike):
        raise InvalidArgumentError(f"records is a list of locations, not one: give [{records!r}]")
    repository_grace = repo.grace
    keep = _check_grace(grace, repository_grace)
    if liveset not in ("exact", "bloom"):
        raise InvalidArgumentError(f"liveset must be 'exact' or 'bloom', got {liveset!r}")
    if liveset == "bloom":
        BloomLiveset(0, fp_rate)  # checks fp_rate before anything is read
    if isinstance(shard_width, bool) or not isinstance(shard_width, int):
        raise InvalidArgumentError(f"shard_width is an integer, got {shard_width!r}")
    if not 1 <= shard_width <= 4:
        raise InvalidArgumentError(f"shard_width is 1 to 4 hex digits, not {shard_width}")
    if client is None:
        client = getattr(repo, "client", None)
    began = _now(repo)  # before any manifest is read: see the module docstring
    reading = time.monotonic()
    info = read_footers(locations, records=list(records), client=client)
    snapshot = info.oldest_snapshot_at
    held_at = began if snapshot is None else min(snapshot, began)
    # Whole seconds, as the store's clock is read (and as collect would round it): older.
    threshold = (held_at - keep).replace(microsecond=0)
    now = datetime.now(UTC)
    # The store's Date is in whole seconds: up to one behind.
    store_now = began + timedelta(seconds=time.monotonic() - reading) + CLOCK_RESOLUTION
    if snapshot is not None and snapshot > store_now:
        raise InvalidArgumentError(
            f"the oldest snapshot was written at {snapshot.isoformat()}, in the future by "
            f"the store's clock ({store_now.isoformat()}): check the clocks"
        )
    return PlannedCollection(
        repository=str(repo),
        manifests=info.per_manifest,
        live_rows=info.num_rows,
        oldest_manifest=info.oldest_created_at,
        grace=keep,
        threshold=threshold,
        held_at=held_at,
        shards=tuple(shard_names(shard_width)),
        planned_at=now,
        liveset_kind=liveset,
        fp_rate=fp_rate,
    )
