"""Garbage collection: delete what no liveset names and no writer touched recently.

The listing is split into shards by the first hex digit(s) of the digest, plus
``other`` (keys under ``objects/`` that cannot be digests; they are reported, never
deleted) and ``uploads`` (stale uploads and multipart uploads, old touch records, and
objects ``verify`` quarantined before the threshold). Shards are listed in
parallel, one page at a time. A shard's garbage is gathered across its pages into
DeleteObjects of up to 1,000 keys (fewer requests than one per page), deleted while the
next pages are listed, so memory stays at the liveset plus a few pages.

Deletion never relies on an old observation: a batch is sent within ``decision_ttl``
of the listing that justified it (of a batch gathered from several pages, the oldest),
or its keys are looked at again first. So a batch is sent as it is, not held for the
next page, once that page would come too late; a lister waits for room among the
pending deletes before it lists, not with a listed page in hand; and fewer LISTs are
sent at once while each takes long (a saturated server answers later the more it is
sent, and a listing's age counts from its send). Failed keys are retried by key
(DeleteObjects reports them by key, not by position), with a bound and backoff, and
what still fails is reported and fails the collection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from ._errors import (
    CollectionFailedError,
    InvalidArgumentError,
    RepositoryError,
    UnavailableError,
)
from ._keeper import CLOCK_RESOLUTION, Windows
from ._lease import HeldLease, LeaseTimes, take_lease
from ._listing import common_prefix, key_before
from ._names import Layout
from ._protocol import check_collector
from ._report import MAX_LISTED_INVALID, CollectReport, DeleteFailure
from ._shards import HEX, OTHER, UPLOADS, check_shards, shard_names
from ._store import DeleteOutcomeUnknown, DeleteThrottled, ObjectInfo, Store
from ._throttle import DeleteRate, backoff
from ._touches import TouchLog
from .liveset import Liveset, contains_many

__all__ = ["Collector", "classify_keys", "collect", "shard_names"]

#: The most keys S3 deletes in one request.
DELETE_BATCH = 1000
MAX_DELETE_ATTEMPTS = 4
#: SlowDowns one delete request may be answered in a row before its keys are reported
#: refused (backing off up to 5 s each: about half a minute).
MAX_SLOWDOWNS = 10
#: Pages of an inventory a delete batch may gather from: its look again lists its
#: whole key range, and candidates may be sparse in it.
MAX_PROPOSED_PAGES = 2


def _pause(attempt: int) -> None:
    """The wait before resending what failed otherwise, unless it was the last try."""
    if attempt < MAX_DELETE_ATTEMPTS:
        time.sleep(min(0.2 * 2**attempt, 5.0))


def collect(
    store: Store,
    layout: Layout,
    name: str,
    liveset: Liveset,
    *,
    windows: Windows,
    concurrency: int,
    threshold: datetime | None = None,
    dry_run: bool = False,
    shards: Sequence[str] | None = None,
    keep_keys: bool = False,
    raise_on_errors: bool = True,
    pause_before_delete: float | None = None,
    listing: Listing | None = None,
) -> CollectReport:
    """A repository's ``collect``: the threshold checked, then one :class:`Collector` run.

    ``threshold`` defaults to ``grace`` ago on the store's clock and may not be newer.
    """
    newest = store.server_now(layout.collections) - windows.grace
    if threshold is None:
        threshold = newest
    elif threshold.tzinfo is None:
        raise InvalidArgumentError("threshold must be timezone-aware (e.g. UTC)")
    elif threshold > newest:
        raise InvalidArgumentError(
            f"threshold {threshold.isoformat()} is newer than now minus the grace period "
            f"({newest.isoformat()}); writers could lose objects"
        )
    # Last-Modified is truncated to the second: keep whatever might be newer.
    effective = threshold.replace(microsecond=0) - CLOCK_RESOLUTION
    collector = Collector(
        store,
        layout,
        name,
        liveset,
        effective,
        settle=windows.settle,
        lease_times=windows.lease,
        concurrency=concurrency,
        dry_run=dry_run,
        shards=shards,
        keep_keys=keep_keys,
        pause_before_delete=pause_before_delete,
        listing=listing,
    )
    report = collector.run()
    if report.failed and raise_on_errors:
        raise CollectionFailedError(report)
    return report


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


Candidate = tuple[str, int]
#: Where a shard's candidates come from instead of a LIST (an S3 Inventory report's
#: ``pages``): the keys under a prefix, sorted, a page at a time. Each page's
#: candidates are looked at again before their delete.
Listing = Callable[[str], Iterator[list[ObjectInfo]]]
#: How long a lister's held keys may wait for the next page (see ``Collector._list``).
Patience = Callable[[float], float | None]


class ListPacer:
    """Which listings may send their next LIST: at most ``width`` listings at once, each
    while fewer than ``most_pending`` delete batches wait or run.

    Why: a page's decisions age from its LIST's send. So a lister waits for room
    before it lists, never with a listed page in hand. And a saturated server answers
    each LIST later the more are in flight, with no more pages a second: ``width``
    drops by one after LISTs slower than ``budget`` and grows by one (up to ``most``)
    after LISTs faster than half of it (see ``took``). It starts at one: a first burst
    of ``most`` LISTs would spend the first pages' window before any answer. A listing
    keeps its place from page to page (the pages of one shard then come one LIST apart,
    so that a batch can gather several) unless more places are taken than ``width``.
    """

    def __init__(self, most: int, budget: float, most_pending: int) -> None:
        self.most = most
        self.width = 1
        self.budget = budget
        self.most_pending = most_pending
        self._placed = 0
        self._pending = 0
        self._round: list[float] = []  # how long the LISTs since the last change took
        self._changed = threading.Condition()

    def wait_turn(self, placed: bool, patience: float | None) -> bool:
        """Wait until a listing that holds a place (``placed``) or takes one now may
        send its next LIST; False if it may not within ``patience`` seconds (None: no
        limit). A listing that does not hold a place after a False must not list."""
        deadline = None if patience is None else time.monotonic() + patience
        with self._changed:
            while self._pending >= self.most_pending or (not placed and self._placed >= self.width):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left)
            if not placed:
                self._placed += 1
            return True

    def crowded(self) -> bool:
        """Whether more places are taken than ``width``: the next to list gives one up."""
        with self._changed:
            return self._placed > self.width

    def leave(self) -> None:
        """Give up a place."""
        with self._changed:
            self._placed -= 1
            self._changed.notify_all()

    def took(self, seconds: float) -> None:
        """A LIST took ``seconds`` from its send to its answer. The width changes on
        the mean of a round of ``width`` LISTs, not on one: one slow or quick answer
        would move it back and forth, and each narrowing stops a listing mid-shard."""
        with self._changed:
            self._round.append(seconds)
            if len(self._round) < self.width:
                return
            mean = sum(self._round) / len(self._round)
            self._round = []
            if mean > self.budget:
                self.width = max(1, self.width - 1)
            elif mean < self.budget / 2 and self.width < self.most:
                self.width += 1
                self._changed.notify_all()

    def wait_room(self) -> None:
        """Wait until fewer than ``most_pending`` delete batches wait or run: how pages
        that come without a LIST (an inventory's) are paced."""
        with self._changed:
            while self._pending >= self.most_pending:
                self._changed.wait()

    def submitted(self) -> None:
        """A delete batch was handed to the deleters."""
        with self._changed:
            self._pending += 1

    def deleted(self) -> None:
        """A delete batch is done, whatever its outcome."""
        with self._changed:
            self._pending -= 1
            self._changed.notify_all()


class Collector:
    """One collection of ``store`` (laid out as ``layout``), named ``name`` in reports.

    Deletes what ``liveset`` does not name and was modified before ``threshold``; see
    ``S3Repository.collect`` for the contract, which every implementation shares.
    ``pause_before_delete`` holds each batch between its decision and its delete, so
    that tests can widen the race between a collection and a writer (default: the
    class attribute, 0).
    """

    pause_before_delete = 0.0
    #: Keys a page of the listing asks for (None: the store's most, 1000 on S3), so
    #: that tests can spread few objects over many pages.
    list_page_size: int | None = None
    #: Shard listings run side by side, at least, where a shard can be split (see
    #: ``_units``); 1 keeps a shard one listing, as tests of its pages need.
    parallel_listings = 16

    def __init__(
        self,
        store: Store,
        layout: Layout,
        name: str,
        liveset: Liveset,
        threshold: datetime,
        *,
        settle: timedelta,
        lease_times: LeaseTimes,
        concurrency: int,
        dry_run: bool = False,
        shards: Sequence[str] | None = None,
        keep_keys: bool = False,
        pause_before_delete: float | None = None,
        listing: Listing | None = None,
    ) -> None:
        self.store = store
        self.layout = layout
        self.name = name
        self.liveset = liveset
        self.threshold = threshold
        self.dry_run = dry_run
        self.shards = check_shards(list(shards or shard_names()))
        self.report = CollectReport(name, threshold, dry_run, list(self.shards))
        if keep_keys:
            self.report.collected_keys = []
        self.settle = settle
        self.lease_times = lease_times
        self.concurrency = concurrency
        if pause_before_delete is not None:
            self.pause_before_delete = pause_before_delete
        self.listing = listing
        self._lock = threading.Lock()
        self._unknown_outcome = False
        self._decision_ttl = settle.total_seconds() / 4
        # A LIST may take a quarter of the window: a batch then still has time to wait
        # for the next page (see ``_run_shard``) and to be sent.
        self._pacer = ListPacer(concurrency, self._decision_ttl / 4, 2 * concurrency)
        self._lease: HeldLease | None = None
        self._touches = TouchLog(store, layout, threshold, concurrency)
        self._rates: dict[str, DeleteRate] = {}  # by shard (see ``_throttle``)

    # -- the run -----------------------------------------------------------------------

    def run(self) -> CollectReport:
        started = time.monotonic()
        check_collector(self.store, self.layout, self.name)
        self._lease = None if self.dry_run else self._acquire_lease()
        try:
            # Every record that may keep something from us, read once our lease is up
            # (writers that saw no lease wrote theirs before), before any decision.
            self._touches.read_within(0.0)
            with (
                ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-list") as listers,
                ThreadPoolExecutor(
                    self.concurrency, thread_name_prefix="s3repo-delete"
                ) as deleters,
            ):
                tasks = [listers.submit(self._run_shard, s, deleters) for s in self._units()]
                wait(tasks)
                deletions = [f for t in tasks if t.exception() is None for f in t.result()]
                wait(deletions)
                everything: list[Future[Any]] = [*tasks, *deletions]
                for future in everything:
                    if (error := future.exception()) is not None:
                        raise error
        finally:
            if self._lease is not None:
                if self._unknown_outcome:
                    # A delete may still land; writers keep waiting while the lease is up.
                    time.sleep(self.settle.total_seconds())
                self._lease.release()
        self.report.duration = time.monotonic() - started
        return self.report

    def _units(self) -> list[str]:
        """The shards to list side by side: ours, each split into its 16 sub-prefixes
        (again, up to 4 hex digits) while there are fewer than ``parallel_listings``. A
        shard's pages come one after another, each LIST after the one before; so a
        collection of one shard of 256 lists 16 ranges at once, as a collection of the
        whole repository lists its 16 shards. Not with an inventory, which has no chain
        (and which each of them would read whole)."""
        units = list(self.shards)
        if self.listing is not None:
            return units
        while True:
            digests = [u for u in units if u not in (OTHER, UPLOADS)]
            if not digests or len(digests) >= self.parallel_listings or len(digests[0]) >= 4:
                return units
            units = [
                part
                for unit in units
                for part in ((unit,) if unit in (OTHER, UPLOADS) else (unit + h for h in HEX))
            ]

    def _acquire_lease(self) -> HeldLease:
        """Write our lease, then yield to any older live one that holds our shards
        (``take_lease``: ConflictError; the lease is removed on any error)."""
        return take_lease(
            self.store,
            self.layout,
            self.name,
            self.shards,
            self.lease_times,
            {"threshold": self.threshold.isoformat()},
        )

    def _run_shard(self, shard: str, deleters: ThreadPoolExecutor) -> list[Future[None]]:
        if shard == UPLOADS:
            return self._sweep_uploads(deleters)
        futures: list[Future[None]] = []
        held: list[Candidate] = []  # gathered from this shard's pages, not yet submitted
        oldest = float("inf")  # when the LIST of the oldest page in ``held`` was sent

        def submit(batch: list[Candidate], decided_at: float) -> None:
            futures.append(self._submit(deleters, batch, decided_at, self._count_object, shard))

        def patience(latency: float) -> float | None:
            """How long ``held`` may still wait to join the next page, which takes about
            ``latency`` to come (the last LIST's); submitted now if not at all. Should it
            take half as long again, a quarter of the window is left for the delete to be
            sent (deleters busy, the lease). None: nothing is held."""
            nonlocal held
            if not held:
                return None
            window = self._decision_ttl * 3 / 4
            left = window - 1.5 * latency - (time.monotonic() - oldest)
            if left > 0:
                return left
            submit(held, oldest)
            held = []
            return None

        pages_held = 0
        for decided_at, contents in self._pages(shard, patience):
            candidates = self._classify(shard, contents)
            if not candidates:
                continue
            if not held:
                oldest = decided_at
                pages_held = 0
            held += candidates
            pages_held += 1
            while len(held) >= DELETE_BATCH:
                submit(held[:DELETE_BATCH], oldest)
                held = held[DELETE_BATCH:]
                oldest = decided_at  # what is left came from this page
                pages_held = 1 if held else 0
            if self.listing is not None and pages_held >= MAX_PROPOSED_PAGES:
                # A batch's second look lists the whole key range it spans: keep it short.
                submit(held, oldest)
                held, pages_held = [], 0
        if held:
            submit(held, oldest)
        return futures

    def _pages(
        self, shard: str, patience: Patience | None = None
    ) -> Iterator[tuple[float, list[ObjectInfo]]]:
        """(time the LIST was sent, its contents) for each page of ``shard``; see
        ``_list`` for ``patience``."""
        layout = self.layout
        if shard != OTHER and self.listing is not None:
            # Proposed, not decided: "decided" before any deadline, so that each page's
            # keys are looked at again (a LIST of their range) before they are deleted.
            for page in self.listing(layout.objects_shard(shard)):
                self._pacer.wait_room()
                yield float("-inf"), page
            return
        if shard != OTHER:
            yield from self._list(layout.objects_shard(shard), None, None, patience)
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
        self,
        prefix: str,
        start_after: str | None,
        stop_before: str | None,
        patience: Patience | None = None,
    ) -> Iterator[tuple[float, list[ObjectInfo]]]:
        """(time the LIST was sent, its contents) for each page of the keys under
        ``prefix`` after ``start_after`` and before ``stop_before``.

        Each LIST waits for its turn (see ``ListPacer``). Meanwhile ``patience(seconds
        the previous LIST took)`` says how long the caller's held keys may wait for the
        next page; once that is spent, it is asked again (and submits them).
        """
        pages = self.store.list_pages(prefix, start_after or "", self.list_page_size)
        pacer = self._pacer
        latency = 0.0
        placed = False
        more = True
        try:
            while more:
                if placed and pacer.crowded():
                    pacer.leave()
                    placed = False
                while not pacer.wait_turn(placed, None if patience is None else patience(latency)):
                    pass
                placed = True
                page = next(pages, None)
                if page is None:
                    return
                latency = time.monotonic() - page.sent_at
                pacer.took(latency)
                more = page.truncated
                contents = page.items
                if stop_before is not None:
                    kept = [item for item in contents if item.key < stop_before]
                    if len(kept) < len(contents):
                        yield page.sent_at, kept
                        return
                yield page.sent_at, contents
        finally:
            if placed:
                pacer.leave()

    def _classify(self, shard: str, contents: list[ObjectInfo]) -> list[Candidate]:
        valid, live = classify_keys(self.layout, self.liveset, [i.key for i in contents])
        scanned_bytes = 0
        invalid: list[str] = []
        candidates: list[Candidate] = []
        counts = {"live": 0, "live_bytes": 0, "recent": 0, "recent_bytes": 0}
        for item, is_valid, is_live in zip(contents, valid.tolist(), live.tolist(), strict=True):
            size = item.size
            scanned_bytes += size
            if not is_valid:
                invalid.append(item.key)
            elif is_live:
                counts["live"] += 1
                counts["live_bytes"] += size
            elif item.modified >= self.threshold or self._touches.touched(item.key):
                counts["recent"] += 1
                counts["recent_bytes"] += size
            else:
                candidates.append((item.key, size))
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

    def _count_record(self, key: str, size: int) -> None:
        self.report.touch_records_removed += 1

    def _count_quarantined(self, key: str, size: int) -> None:
        self.report.quarantine_removed += 1

    def _submit(
        self,
        deleters: ThreadPoolExecutor,
        candidates: list[Candidate],
        decided_at: float,
        count: Callable[[str, int], None],
        shard: str,
    ) -> Future[None]:
        if self.dry_run:
            with self._lock:
                for key, size in candidates:
                    count(key, size)
            done: Future[None] = Future()
            done.set_result(None)
            return done
        self._pacer.submitted()  # listers wait for room before they list (ListPacer)
        rate = self._rate(shard)

        def delete() -> None:
            try:
                self._delete(candidates, decided_at, count, rate)
            finally:
                self._pacer.deleted()

        return deleters.submit(delete)

    def _rate(self, shard: str) -> DeleteRate:
        with self._lock:
            rate = self._rates.get(shard)
            if rate is None:
                rate = self._rates[shard] = DeleteRate(self.concurrency)
            return rate

    def _delete(
        self,
        batch: list[Candidate],
        decided_at: float,
        count: Callable[[str, int], None],
        rate: DeleteRate,
    ) -> None:
        pending = batch
        failures: dict[str, DeleteFailure] = {}
        if self.pause_before_delete:
            time.sleep(self.pause_before_delete)
        sent_blind = False  # whether a request of ours may have deleted keys unseen
        attempt = slowed = 0
        while attempt < MAX_DELETE_ATTEMPTS:
            decided_at, pending = self._ready_to_send(pending, decided_at, count, sent_blind)
            if not pending:
                return
            sizes = dict(pending)
            try:
                with rate.slot():
                    refused = self.store.delete_many([k for k, _ in pending])
            except DeleteThrottled:
                # Not applied, S3 says: sent again as it was (no second look), later and
                # with fewer of this shard's requests at once (see ``_throttle``).
                failures = {k: DeleteFailure(k, "SlowDown", "throttled") for k in sizes}
                slowed += 1
                rate.slowed_down()
                with self._lock:
                    self.report.throttled += 1
                if slowed > MAX_SLOWDOWNS:
                    break
                time.sleep(backoff(slowed))
                continue
            except (RepositoryError, DeleteOutcomeUnknown) as exc:
                failures = {k: DeleteFailure(k, type(exc).__name__, str(exc)) for k in sizes}
                self._unknown_outcome = sent_blind = True
                decided_at = float("-inf")  # look at every key again before resending
                attempt += 1
                _pause(attempt)
                continue
            rate.went_through()
            with self._lock:
                for key, size in pending:
                    if key not in refused:
                        count(key, size)
            failures = {
                k: DeleteFailure(k, code, message) for k, (code, message) in refused.items()
            }
            pending = [(k, sizes[k]) for k in refused]
            if not pending:
                return  # all deleted: no backoff, no second look at nothing
            decided_at = float("-inf")
            attempt += 1
            _pause(attempt)
        with self._lock:
            self.report.errors.extend(failures[k] for k, _ in pending if k in failures)

    def _ready_to_send(
        self,
        pending: list[Candidate],
        decided_at: float,
        count: Callable[[str, int], None],
        sent_blind: bool,
    ) -> tuple[float, list[Candidate]]:
        """The keys to delete now: looked at again if their decision is stale, without
        those touch records read within the decision window keep, and only once our
        lease is sure to outlive the delete (it may land up to settle later)."""
        settle = self.settle.total_seconds()
        for _ in range(8):
            if self._lease is not None:
                self._lease.wait_live_for(settle)
            if time.monotonic() - decided_at > self._decision_ttl:
                decided_at, pending = self._look_again(pending, count, sent_blind)
            # Records read at most settle / 4 ago (or just now): see ``_touches``.
            self._touches.read_within(self._decision_ttl)
            pending = self._untouched(pending)
            if not pending or self._lease is None or self._lease.is_live_for(settle):
                return decided_at, pending
        raise UnavailableError(f"the collection lease of {self.name} keeps running short")

    def _untouched(self, pending: list[Candidate]) -> list[Candidate]:
        """``pending`` without the keys a touch record read so far keeps (as recent)."""
        still: list[Candidate] = []
        for key, size in pending:
            if self._touches.touched(key):
                with self._lock:
                    self.report.kept_recent += 1
                    self.report.recent_bytes += size
            else:
                still.append((key, size))
        return still

    def _look_again(
        self, pending: list[Candidate], count: Callable[[str, int], None], sent_blind: bool
    ) -> tuple[float, list[Candidate]]:
        """List the batch's key range again: keep the keys still there and still old.

        One LIST per page of the range, not a HEAD per key: a batch comes from a few
        consecutive pages of one shard (those listed within its decision window).
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
        for page in self.store.list_pages(prefix, start_after):
            for item in page.items:
                if item.key > last:
                    return found
                found[item.key] = item.modified
        return found

    def _sweep_uploads(self, deleters: ThreadPoolExecutor) -> list[Future[None]]:
        layout = self.layout
        futures: list[Future[None]] = []
        for decided_at, contents in self._list(layout.uploads, None, None):
            stale = [(item.key, item.size) for item in contents if item.modified < self.threshold]
            if stale:
                futures.append(
                    self._submit(deleters, stale, decided_at, self._count_upload, UPLOADS)
                )
        # Touch records older than the threshold keep nothing from this collection, nor
        # from any that starts later with the default threshold (see ``_touches``).
        for decided_at, contents in self._list(layout.touches, None, None):
            old = [
                (item.key, item.size)
                for item in contents
                if item.modified < self.threshold and layout.time_of_touch_key(item.key)
            ]
            if old:
                futures.append(self._submit(deleters, old, decided_at, self._count_record, UPLOADS))
        # Corrupt objects verify moved aside, kept for a grace period to be looked at.
        for decided_at, contents in self._list(layout.quarantine, None, None):
            old = [
                (item.key, item.size)
                for item in contents
                if item.modified < self.threshold and layout.is_quarantine_key(item.key)
            ]
            if old:
                futures.append(
                    self._submit(deleters, old, decided_at, self._count_quarantined, UPLOADS)
                )
        ours = (layout.objects, layout.uploads)
        for upload in self.store.list_uploads(layout.root):
            if upload.initiated >= self.threshold or not upload.key.startswith(ours):
                continue
            if not self.dry_run and not self.store.abort_upload(upload):
                continue  # finished or aborted meanwhile
            with self._lock:
                self.report.multipart_aborted += 1
        return futures
