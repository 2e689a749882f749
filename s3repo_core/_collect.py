"""Garbage collection: delete what no liveset names and no writer touched recently.

The listing is split into shards by the first hex digit(s) of the digest, plus
``other`` (keys under ``objects/`` that cannot be digests; they are reported, never
deleted) and ``uploads`` (stale uploads and multipart uploads). Shards are listed in
parallel, one page at a time, and each page's garbage is deleted while the next pages
are listed, so memory stays at the liveset plus a few pages.

Deletion never relies on an old observation: a batch is sent within ``decision_ttl``
of the listing that justified it, or its keys are looked at again first; failed keys
are retried by key (DeleteObjects reports them by key, not by position), with a bound
and backoff, and what still fails is reported and fails the collection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import ConflictError, InvalidArgumentError, RepositoryError, UnavailableError
from ._lease import HeldLease, list_leases, read_leases
from ._listing import common_prefix, key_before, list_pages
from ._names import Layout
from ._translate import error_code, translated
from .liveset import Liveset, contains_many

if TYPE_CHECKING:
    from ._s3repository import S3Repository

__all__ = ["CollectReport", "DeleteFailure", "classify_keys", "shard_names"]

HEX = "0123456789abcdef"
OTHER = "other"
UPLOADS = "uploads"
#: The most keys S3 deletes in one request.
DELETE_BATCH = 1000
MAX_DELETE_ATTEMPTS = 4
#: Invalid keys listed in a report; more are counted.
MAX_LISTED_INVALID = 1000


def shard_names(width: int = 1) -> list[str]:
    """Every shard of a repository: ``16**width`` digest prefixes, 'other', 'uploads'."""
    if not 1 <= width <= 4:
        raise ValueError("shard width is 1 to 4 hex digits")
    return [f"{n:0{width}x}" for n in range(16**width)] + [OTHER, UPLOADS]


def _check_shards(shards: list[str]) -> list[str]:
    for shard in shards:
        if shard in (OTHER, UPLOADS):
            continue
        if not shard or len(shard) > 4 or not set(shard) <= set(HEX):
            raise InvalidArgumentError(
                f"invalid shard {shard!r}: 1-4 lowercase hex digits, 'other' or 'uploads'"
            )
    digest_shards = [s for s in shards if s not in (OTHER, UPLOADS)]
    for a in digest_shards:
        for b in digest_shards:
            if a != b and b.startswith(a):
                raise InvalidArgumentError(f"shards {a!r} and {b!r} overlap")
    if len(set(shards)) != len(shards):
        raise InvalidArgumentError("a shard is named twice")
    return shards


@dataclass(frozen=True)
class DeleteFailure:
    """A key the server refused to delete, with the error it gave for that key."""

    key: str
    code: str
    message: str


@dataclass
class CollectReport:
    """What a collection did (or, with ``dry_run``, would do)."""

    repository: str
    threshold: datetime
    dry_run: bool
    shards: list[str]
    scanned: int = 0
    scanned_bytes: int = 0
    live: int = 0
    live_bytes: int = 0
    kept_recent: int = 0
    recent_bytes: int = 0
    collected: int = 0
    bytes_collected: int = 0
    invalid_count: int = 0
    invalid_keys: list[str] = field(default_factory=list)
    errors: list[DeleteFailure] = field(default_factory=list)
    uploads_removed: int = 0
    multipart_aborted: int = 0
    duration: float = 0.0
    collected_keys: list[str] | None = None

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def merge(self, other: CollectReport) -> CollectReport:
        """One report for two shards' reports (as an orchestrator aggregates them)."""
        merged = CollectReport(
            self.repository,
            min(self.threshold, other.threshold),
            self.dry_run or other.dry_run,
            self.shards + other.shards,
        )
        for name in (
            "scanned",
            "scanned_bytes",
            "live",
            "live_bytes",
            "kept_recent",
            "recent_bytes",
            "collected",
            "bytes_collected",
            "invalid_count",
            "uploads_removed",
            "multipart_aborted",
        ):
            setattr(merged, name, getattr(self, name) + getattr(other, name))
        merged.invalid_keys = (self.invalid_keys + other.invalid_keys)[:MAX_LISTED_INVALID]
        merged.errors = self.errors + other.errors
        merged.duration = max(self.duration, other.duration)
        if self.collected_keys is not None or other.collected_keys is not None:
            merged.collected_keys = (self.collected_keys or []) + (other.collected_keys or [])
        return merged

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["threshold"] = self.threshold.isoformat()
        return data

    def summary(self) -> str:
        verb = "would collect" if self.dry_run else "collected"
        return (
            f"{self.repository}: scanned {self.scanned} objects, {self.live} live, "
            f"{self.kept_recent} kept as recent, {verb} {self.collected} "
            f"({self.bytes_collected} bytes), {self.invalid_count} invalid keys, "
            f"{len(self.errors)} delete errors, {self.uploads_removed} stale uploads, "
            f"{self.multipart_aborted} multipart uploads aborted, in {self.duration:.1f}s"
        )


def classify_keys(
    layout: Layout, liveset: Liveset, keys: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """For listed ``keys``: (names a digest, that digest is live), two bool arrays.

    Collection's decision for a page, vectorised: a key that is not a digest's object
    key is never live (and never deleted; collection reports it instead).
    """
    valid, raw = layout.digests_of_keys(keys)
    found = contains_many(liveset, raw) if len(raw) else np.zeros(0, dtype=np.bool_)
    if len(found) == len(keys):
        return valid, found
    live = np.zeros(len(keys), dtype=np.bool_)
    live[valid] = found
    return valid, live


class CollectionFailedError(RepositoryError):
    """A collection finished but could not delete some keys; ``report`` says which."""

    def __init__(self, report: CollectReport) -> None:
        self.report = report
        shown = ", ".join(f"{f.key} ({f.code})" for f in report.errors[:5])
        super().__init__(
            f"collection of {report.repository} failed to delete {len(report.errors)} "
            f"keys: {shown}{' ...' if len(report.errors) > 5 else ''}"
        )


# botocore would resend a DeleteObjects whose answer it did not get, possibly long after
# the observation that justified it; collections resend only after looking again.
_no_retry = threading.local()


class _DeleteOutcomeUnknown(Exception):
    pass


def _refuse_delete_retries(attempts: int, response: Any, caught_exception: Any, **_: Any) -> None:
    if getattr(_no_retry, "active", False) and (
        caught_exception is not None or (response is not None and response[0].status_code >= 500)
    ):
        raise _DeleteOutcomeUnknown(str(caught_exception or response[0].status_code))


Candidate = tuple[str, int]


class Collector:
    """One run of ``S3Repository.collect``; see there for the contract."""

    #: Seconds to wait between deciding and deleting; tests widen the race window with it.
    pause_before_delete = 0.0

    def __init__(
        self,
        repo: S3Repository,
        liveset: Liveset,
        threshold: datetime,
        dry_run: bool,
        shards: list[str],
        keep_keys: bool,
    ) -> None:
        self.repo = repo
        self.client = repo.client
        self.client.meta.events.register_first(
            "needs-retry.s3.DeleteObjects",
            _refuse_delete_retries,
            unique_id="s3repo-no-blind-delete-retries",
        )
        self.liveset = liveset
        self.threshold = threshold
        self.dry_run = dry_run
        self.shards = _check_shards(list(shards))
        self.report = CollectReport(repo.url, threshold, dry_run, list(self.shards))
        if keep_keys:
            self.report.collected_keys = []
        self._lock = threading.Lock()
        self._unknown_outcome = False
        self._decision_ttl = repo.settle.total_seconds() / 4
        self._pending = threading.BoundedSemaphore(2 * repo.concurrency)
        self._lease: HeldLease | None = None

    # -- the run -----------------------------------------------------------------------

    def run(self) -> CollectReport:
        started = time.monotonic()
        self._lease = None if self.dry_run else self._acquire_lease()
        try:
            with (
                ThreadPoolExecutor(
                    self.repo.concurrency, thread_name_prefix="s3repo-list"
                ) as listers,
                ThreadPoolExecutor(
                    self.repo.concurrency, thread_name_prefix="s3repo-delete"
                ) as deleters,
            ):
                tasks = [listers.submit(self._run_shard, s, deleters) for s in self.shards]
                wait(tasks)
                deletions = [f for t in tasks if t.exception() is None for f in t.result()]
                wait(deletions)
                for future in (*tasks, *deletions):
                    if (error := future.exception()) is not None:
                        raise error
        finally:
            if self._lease is not None:
                if self._unknown_outcome:
                    # A delete may still land; writers keep waiting while the lease is up.
                    time.sleep(self.repo.settle.total_seconds())
                self._lease.release()
        self.report.duration = time.monotonic() - started
        return self.report

    def _acquire_lease(self) -> HeldLease:
        """Write our lease, then yield to any older live one that holds our shards.

        Whatever fails after the lease is written, it is removed before the error
        propagates; dead leases (see ``_lease``) are removed on the way.
        """
        repo = self.repo
        times = repo.lease_times
        lease = HeldLease(
            self.client,
            repo.bucket,
            repo.layout.new_lease_key(),
            {"shards": self.shards, "threshold": self.threshold.isoformat()},
            times,
            repo.options.write_args(),  # a bucket policy may demand encryption of every write
        )
        try:
            lease.write()
            lease.start_heartbeat()
            now = repo._server_now()
            listed = list_leases(self.client, repo.bucket, repo.layout)
            live = [(k, modified) for k, modified in listed if not times.is_dead(modified, now)]
            for other in read_leases(self.client, repo.bucket, live):
                if other.key == lease.key:
                    break
                if not other.shards or other.shards & set(self.shards):
                    raise ConflictError(
                        f"another collection of {repo} holds shards "
                        f"{sorted(other.shards & set(self.shards)) or 'all'} "
                        f"(lease {other.key}, renewed {other.modified:%Y-%m-%d %H:%M:%S}Z; "
                        f"it dies {times.ttl.total_seconds():g}s after its last renewal)"
                    )
            for dead, modified in listed:
                if times.is_dead(modified, now):
                    repo._delete_quietly(dead)
        except BaseException:
            lease.release()
            raise
        return lease

    def _run_shard(self, shard: str, deleters: ThreadPoolExecutor) -> list[Future[None]]:
        if shard == UPLOADS:
            return self._sweep_uploads(deleters)
        futures: list[Future[None]] = []
        for decided_at, contents in self._pages(shard):
            candidates = self._classify(shard, contents)
            if candidates:
                futures.append(self._submit(deleters, candidates, decided_at, self._count_object))
        return futures

    def _pages(self, shard: str) -> Iterator[tuple[float, list[dict[str, Any]]]]:
        """(time the LIST was sent, its contents) for each page of ``shard``."""
        layout = self.repo.layout
        if shard != OTHER:
            yield from self._list(layout.objects_shard(shard), None, None)
            return
        # 'other' is every key under objects/ outside sha256:<hex...>: the gaps around and
        # between the hex prefixes, in key order.
        bounds = [layout.objects_shard(h) for h in "0:a"]  # ':' sorts right after '9'
        beyond = "\U0010ffff"
        gaps = [
            (None, bounds[0]),
            (layout.objects_shard("9") + beyond, bounds[2]),
            (layout.objects_shard("f") + beyond, None),
        ]
        for after, before in gaps:
            yield from self._list(layout.objects, after, before)

    def _list(
        self, prefix: str, start_after: str | None, stop_before: str | None
    ) -> Iterator[tuple[float, list[dict[str, Any]]]]:
        pages = list_pages(self.client, self.repo.bucket, prefix, start_after or "")
        for decided_at, page in pages:
            contents = page.get("Contents", [])
            if stop_before is not None:
                kept = [item for item in contents if item["Key"] < stop_before]
                if len(kept) < len(contents):
                    yield decided_at, kept
                    return
            yield decided_at, contents

    def _classify(self, shard: str, contents: list[dict[str, Any]]) -> list[Candidate]:
        valid, live = classify_keys(self.repo.layout, self.liveset, [i["Key"] for i in contents])
        scanned_bytes = 0
        invalid: list[str] = []
        candidates: list[Candidate] = []
        counts = {"live": 0, "live_bytes": 0, "recent": 0, "recent_bytes": 0}
        for item, is_valid, is_live in zip(contents, valid.tolist(), live.tolist(), strict=True):
            size = int(item.get("Size", 0))
            scanned_bytes += size
            if not is_valid:
                invalid.append(item["Key"])
            elif is_live:
                counts["live"] += 1
                counts["live_bytes"] += size
            elif item["LastModified"] >= self.threshold:
                counts["recent"] += 1
                counts["recent_bytes"] += size
            else:
                candidates.append((item["Key"], size))
        with self._lock:
            report = self.report
            report.scanned += len(contents)
            report.scanned_bytes += scanned_bytes
            report.live += counts["live"]
            report.live_bytes += counts["live_bytes"]
            report.kept_recent += counts["recent"]
            report.recent_bytes += counts["recent_bytes"]
            report.invalid_count += len(invalid)
            room = MAX_LISTED_INVALID - len(report.invalid_keys)
            report.invalid_keys.extend(invalid[: max(room, 0)])
        return candidates

    # -- deleting ------------------------------------------------------------------------

    def _count_object(self, key: str, size: int) -> None:
        self.report.collected += 1
        self.report.bytes_collected += size
        if self.report.collected_keys is not None:
            self.report.collected_keys.append(key)

    def _count_upload(self, key: str, size: int) -> None:
        self.report.uploads_removed += 1

    def _submit(
        self,
        deleters: ThreadPoolExecutor,
        candidates: list[Candidate],
        decided_at: float,
        count: Callable[[str, int], None],
    ) -> Future[None]:
        if self.dry_run:
            with self._lock:
                for key, size in candidates:
                    count(key, size)
            done: Future[None] = Future()
            done.set_result(None)
            return done
        self._pending.acquire()  # bounds the pages waiting for deletion

        def delete() -> None:
            try:
                self._delete(candidates, decided_at, count)
            finally:
                self._pending.release()

        return deleters.submit(delete)

    def _delete(
        self, batch: list[Candidate], decided_at: float, count: Callable[[str, int], None]
    ) -> None:
        repo = self.repo
        pending = batch
        failures: dict[str, DeleteFailure] = {}
        if self.pause_before_delete:
            time.sleep(self.pause_before_delete)
        sent_blind = False  # whether a request of ours may have deleted keys unseen
        for attempt in range(MAX_DELETE_ATTEMPTS):
            if attempt:
                time.sleep(min(0.2 * 2**attempt, 5.0))
            decided_at, pending = self._ready_to_send(pending, decided_at, count, sent_blind)
            if not pending:
                return
            sizes = dict(pending)
            try:
                _no_retry.active = True
                with translated(f"deleting {len(pending)} objects from {repo}"):
                    response = self.client.delete_objects(
                        Bucket=repo.bucket,
                        Delete={"Objects": [{"Key": k} for k, _ in pending], "Quiet": True},
                    )
            except (RepositoryError, _DeleteOutcomeUnknown) as exc:
                self._unknown_outcome = sent_blind = True
                failures = {k: DeleteFailure(k, type(exc).__name__, str(exc)) for k in sizes}
                decided_at = float("-inf")  # look at every key again before resending
                continue
            finally:
                _no_retry.active = False
            refused = {e["Key"]: e for e in response.get("Errors", []) if e.get("Key") in sizes}
            with self._lock:
                for key, size in pending:
                    if key not in refused:
                        count(key, size)
            failures = {
                k: DeleteFailure(k, e.get("Code", ""), e.get("Message", ""))
                for k, e in refused.items()
            }
            pending = [(k, sizes[k]) for k in refused]
            decided_at = float("-inf")
        with self._lock:
            self.report.errors.extend(failures[k] for k, _ in pending if k in failures)

    def _ready_to_send(
        self,
        pending: list[Candidate],
        decided_at: float,
        count: Callable[[str, int], None],
        sent_blind: bool,
    ) -> tuple[float, list[Candidate]]:
        """The keys to delete now: looked at again if their decision is stale, and only
        once our lease is sure to outlive the delete (it may land up to settle later)."""
        settle = self.repo.settle.total_seconds()
        for _ in range(8):
            if self._lease is not None:
                self._lease.wait_live_for(settle)
            if time.monotonic() - decided_at > self._decision_ttl:
                decided_at, pending = self._look_again(pending, count, sent_blind)
            if not pending or self._lease is None or self._lease.is_live_for(settle):
                return decided_at, pending
        raise UnavailableError(f"the collection lease of {self.repo} keeps running short")

    def _look_again(
        self, pending: list[Candidate], count: Callable[[str, int], None], sent_blind: bool
    ) -> tuple[float, list[Candidate]]:
        """List the batch's key range again: keep the keys still there and still old.

        One LIST per page of the range, not a HEAD per key: a batch comes from one page.
        A key that is gone counts as collected only if a request of ours whose outcome
        is unknown may have deleted it.
        """
        decided_at = time.monotonic()
        if not pending:
            return decided_at, pending
        modified = self._list_range(min(k for k, _ in pending), max(k for k, _ in pending))
        still: list[Candidate] = []
        for key, size in pending:
            if key not in modified:
                if sent_blind:
                    with self._lock:
                        count(key, size)
            elif modified[key] >= self.threshold:
                with self._lock:
                    self.report.kept_recent += 1
                    self.report.recent_bytes += size
            else:
                still.append((key, size))
        return decided_at, still

    def _list_range(self, first: str, last: str) -> dict[str, datetime]:
        """Last-modified time of every key from ``first`` to ``last`` inclusive."""
        start_after = key_before(first)
        prefix = common_prefix(start_after or first, last)
        found: dict[str, datetime] = {}
        for _, page in list_pages(self.client, self.repo.bucket, prefix, start_after):
            for item in page.get("Contents", []):
                if item["Key"] > last:
                    return found
                found[item["Key"]] = item["LastModified"]
        return found

    def _sweep_uploads(self, deleters: ThreadPoolExecutor) -> list[Future[None]]:
        repo = self.repo
        futures: list[Future[None]] = []
        for decided_at, contents in self._list(repo.layout.uploads, None, None):
            stale = [
                (item["Key"], int(item.get("Size", 0)))
                for item in contents
                if item["LastModified"] < self.threshold
            ]
            if stale:
                futures.append(self._submit(deleters, stale, decided_at, self._count_upload))
        ours = (repo.layout.objects, repo.layout.uploads)
        args: dict[str, Any] = {"Bucket": repo.bucket, "Prefix": repo.layout.root}
        while True:
            with translated(f"listing multipart uploads of {repo}"):
                page = self.client.list_multipart_uploads(**args)
            for upload in page.get("Uploads", []):
                if upload["Initiated"] >= self.threshold or not upload["Key"].startswith(ours):
                    continue
                if not self.dry_run:
                    try:
                        with translated(f"aborting a multipart upload to {upload['Key']}"):
                            self.client.abort_multipart_upload(
                                Bucket=repo.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                            )
                    except RepositoryError as exc:
                        if error_code(exc.__cause__) != "NoSuchUpload":  # type: ignore[arg-type]
                            raise
                        continue
                with self._lock:
                    self.report.multipart_aborted += 1
            if not page.get("IsTruncated"):
                return futures
            args["KeyMarker"] = page.get("NextKeyMarker")
            args["UploadIdMarker"] = page.get("NextUploadIdMarker")
