"""The writer's half of the collection protocol: content found stored is made to stay.

A writer that finds its content already stored uploads nothing; it must then make
sure no collection running now deletes it. ``Windows`` holds the times writers and
collections agree on; ``Keeper.keep`` is what a writer calls with what it found. Both
work on any ``Store``, so every repository implementation shares them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ._errors import InvalidArgumentError, UnavailableError
from ._lease import LeaseTimes, any_live_lease
from ._names import Layout
from ._protocol import read_marker
from ._store import Stat, Store
from ._survey import Sighting, survey
from ._touches import write_record

__all__ = [
    "CLOCK_RESOLUTION",
    "DEFAULT_GRACE",
    "DEFAULT_REFRESH_WINDOW",
    "DEFAULT_SETTLE",
    "Keeper",
    "Kept",
    "Windows",
]

DEFAULT_REFRESH_WINDOW = timedelta(hours=1)
DEFAULT_GRACE = timedelta(hours=24)
DEFAULT_SETTLE = timedelta(seconds=60)
#: S3 times (Last-Modified, Date) are whole seconds: every comparison allows for it.
CLOCK_RESOLUTION = timedelta(seconds=1)

#: Passes of :meth:`Keeper.freshen_early` before it gives up.
MAX_FRESHENING_PASSES = 8

#: Refreshes ``stat``'s key (gives it a new last-modified time); False if it vanished.
Refresh = Callable[[Stat], bool]


@dataclass(frozen=True)
class Windows:
    """The times writers and collections agree on, all on the store's clock.

    A writer that finds content last modified more than ``refresh_window`` ago
    refreshes it; a collection refuses a threshold newer than ``grace`` ago; a delete
    is sent within a quarter of ``settle`` of the listing that justified it, and a
    writer that finds content modified less than ``settle`` ago while a collection
    holds a lease waits that long and looks again. ``lease`` says how collections
    hold their leases.
    """

    refresh_window: timedelta
    grace: timedelta
    settle: timedelta
    lease: LeaseTimes

    @classmethod
    def derive(
        cls,
        refresh_window: timedelta = DEFAULT_REFRESH_WINDOW,
        grace: timedelta = DEFAULT_GRACE,
        settle: timedelta = DEFAULT_SETTLE,
        heartbeat: timedelta | None = None,
        lease_ttl: timedelta | None = None,
    ) -> Windows:
        """The windows, checked against each other (InvalidArgumentError if unsafe)."""
        if refresh_window <= timedelta(0) or settle <= timedelta(0):
            raise InvalidArgumentError("refresh_window and settle must be positive")
        if grace <= refresh_window + settle + 2 * CLOCK_RESOLUTION:
            raise InvalidArgumentError(
                "grace must be longer than refresh_window + settle + 2 seconds"
            )
        lease = LeaseTimes.derive(settle, heartbeat, lease_ttl)
        return cls(refresh_window, grace, settle, lease)


@dataclass
class Kept:
    """What :meth:`Keeper.keep_all` did with what a writer found."""

    #: Keys that vanished meanwhile: the writer writes them again.
    vanished: list[str] = field(default_factory=list)
    #: For each key kept, a ``time.monotonic()`` its last-modified time is not before.
    born: dict[str, float] = field(default_factory=dict)


class Keeper:
    """Keeps content a writer found stored in ``store`` (laid out as ``layout``).

    ``refresh`` gives one object a new last-modified time (a self-copy on S3); it is
    what a writer does when touch records cannot be used (see ``_touches``).
    """

    def __init__(
        self,
        store: Store,
        layout: Layout,
        windows: Windows,
        refresh: Refresh,
        *,
        concurrency: int = 4,
        page_size: int = 1000,
    ) -> None:
        self.store = store
        self.layout = layout
        self.windows = windows
        self.concurrency = concurrency
        self.page_size = page_size
        self._refresh = refresh
        self._touch_records = False  # once the marker says so, for good

    def kept(self, found: Stat | None, size: int) -> bool:
        """Whether content of ``size`` bytes found as ``found`` is stored and will stay."""
        return found is not None and found.size == size and self.keep(found)

    def keep(self, found: Stat) -> bool:
        """A writer found ``found.key`` stored: make sure it stays; False if it vanished
        meanwhile, so that the caller writes it again."""
        return not self.keep_fresh([Sighting(found, time.monotonic())]).vanished

    def keep_fresh(self, seen: Sequence[Sighting]) -> Kept:
        """:meth:`keep_all`, and then, as the guarantee counts from the writer's return,
        :meth:`freshen_early` (a writer held up while keeping, by a slow store or a busy
        machine, keeps again)."""
        kept = self.keep_all(seen)
        sizes = {sighting.key: sighting.stat.size for sighting in seen}
        self.freshen_early(kept, sizes)
        return kept

    def freshen_early(self, kept: Kept, sizes: Mapping[str, int]) -> None:
        """Keep again what ``kept`` made fresh more than ``refresh_window`` ago, until
        nothing is (``sizes``: each key's size); vanished keys are added to ``kept``.
        A pass ends early only if it took longer than ``refresh_window`` itself, so this
        needs ``refresh_window`` to outlast a pass of requests; UnavailableError after
        MAX_FRESHENING_PASSES of them, rather than return what is not kept."""
        limit = self.windows.refresh_window.total_seconds()
        for _ in range(MAX_FRESHENING_PASSES):
            early = [key for key, at in kept.born.items() if time.monotonic() - at > limit]
            if not early:
                return
            asked = time.monotonic()
            now = self.store.server_now(self.layout.collections)
            ours = [
                Sighting(Stat(key, sizes[key], now - _since(kept.born[key], asked), now), asked)
                for key in early
            ]
            again = self.keep_all(ours, ours=True)
            kept.born.update(again.born)
            for key in again.vanished:
                del kept.born[key]
                kept.vanished.append(key)
        raise UnavailableError(
            f"{self.store.where(self.layout.objects)}: keeping {len(kept.born)} objects took "
            f"longer than refresh_window ({limit:g} s) {MAX_FRESHENING_PASSES} times over; "
            "the store or this machine is too slow for the guarantee to hold at return",
            key=self.layout.objects,
        )

    def keep_all(self, seen: Sequence[Sighting], *, ours: bool = False) -> Kept:
        """A writer found each of ``seen`` stored: make sure they stay.

        On return each kept object is no older than ``refresh_window``, which is what
        the guarantee needs (a collection deletes only what is older than its threshold,
        at least ``grace`` before it started). Two dangers, each handled once for all:

        - modified within ``settle``: the object may have been written back just after a
          collection decided to delete its previous version, whose delete may still be
          in flight. While a lease is live the writer waits that out, then looks again.
        - older than ``refresh_window``: it is made fresh, by one touch record where the
          repository allows them, else by a refresh each; then, only if it was old enough
          for some collection to have chosen it (older than ``grace``, less a margin) and
          a lease is live, the writer waits ``settle`` and looks again.

        ``ours`` says the writer itself stored or confirmed these objects in this call
        (a batch freshening what it confirmed early): a collection may then have chosen
        none of their recent versions, as none was older than ``grace``, so the first
        danger does not arise, however young they are.
        """
        kept = Kept()
        settled = (self.windows.settle + CLOCK_RESOLUTION).total_seconds()
        young = [] if ours else [s for s in seen if _server_age(s) < settled]
        rest = [s for s in seen if ours or _server_age(s) >= settled]
        if young and self._lease_live(_store_now(young)):
            time.sleep(max(0.0, max(settled - _server_age(s) for s in young)))
            again = self._look([s.key for s in young])
            kept.vanished += [key for key, found in again.items() if found is None]
            rest += [found for found in again.values() if found is not None]
        else:
            rest += young
        limit = self.windows.refresh_window.total_seconds()
        old = [s for s in rest if s.age() > limit]
        kept.born.update((s.key, s.born()) for s in rest if s.age() <= limit)
        if old:
            self._freshen(old, kept)
        return kept

    # -- making old objects fresh ------------------------------------------------------

    def _freshen(self, old: list[Sighting], kept: Kept) -> None:
        if self._touches_allowed() and self._touch(old, kept):
            return
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-keep") as pool:
            for sighting, born in zip(old, pool.map(self._refresh_and_settle, old), strict=True):
                if born is None:
                    kept.vanished.append(sighting.key)
                else:
                    kept.born[sighting.key] = born

    def _touches_allowed(self) -> bool:
        if not self._touch_records:
            self._touch_records = read_marker(self.store, self.layout).touch_records
        return self._touch_records

    def _touch(self, old: list[Sighting], kept: Kept) -> bool:
        """Keep ``old`` with one touch record; False (nothing kept) if it landed too late
        to be relied on. See ``_touches`` for the rules this follows."""
        keys = [s.key for s in old]
        sent = time.monotonic()
        oldest = max(s.age() for s in old)
        now = _store_now(old)
        if not self._record(keys, now):
            return False
        # How old the oldest was when the record landed, by the whole-second times a
        # collector compares (it chooses only what is older than grace plus a second,
        # by its own Date): a second's margin for our estimate's truncation.
        oldest += time.monotonic() - sent + CLOCK_RESOLUTION.total_seconds()
        settled = self.windows.settle + CLOCK_RESOLUTION
        if oldest < self.windows.grace.total_seconds() or not self._lease_live(now):
            kept.born.update((key, sent) for key in keys)
            return True
        # A delete decided before our record was read may land for settle: wait it out.
        time.sleep(settled.total_seconds())
        again = self._look(keys)
        kept.vanished += [key for key, found in again.items() if found is None]
        survivors = [found for found in again.values() if found is not None]
        if survivors and settled > self.windows.refresh_window:
            # The wait made our record older than refresh_window: touch once more, with
            # no wait this time (the record it replaces is young: no collection chose by
            # it), or refresh each if this record lands too late too.
            sent = time.monotonic()
            if not self._record([s.key for s in survivors], _store_now(survivors)):
                self._refresh_each(survivors, kept)
                return True
        kept.born.update((s.key, sent) for s in survivors)
        return True

    def _record(self, keys: list[str], now: datetime) -> bool:
        digests = [self.layout.digest_of_key(key) for key in keys]
        assert None not in digests, keys  # only object keys are kept
        return write_record(self.store, self.layout, digests, now)  # type: ignore[arg-type]

    def _refresh_each(self, seen: list[Sighting], kept: Kept) -> None:
        """Refresh each of ``seen`` with no wait after (no collection chose them)."""
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-keep") as pool:
            sent = time.monotonic()
            refreshed = pool.map(lambda s: self._refresh(s.stat), seen)
            for sighting, stays in zip(seen, refreshed, strict=True):
                if stays:
                    kept.born[sighting.key] = sent
                else:
                    kept.vanished.append(sighting.key)

    def _refresh_and_settle(self, sighting: Sighting) -> float | None:
        """Refresh one object; wait out ``settle`` only if a collection could have
        chosen it. A time its last-modified is not before, or None if it vanished.

        If the old version was old enough by then for a collection to have chosen it,
        its delete may land for ``settle``: while a lease is live, wait that out and
        look again. Otherwise (the usual case: objects are refreshed an hour old and
        collected a day old) no wait is needed.
        """
        found = sighting.stat
        sent = time.monotonic()
        oldest = sighting.age()
        if not self._refresh(found):
            return None
        oldest += time.monotonic() - sent + CLOCK_RESOLUTION.total_seconds()
        if oldest < self.windows.grace.total_seconds() or not self._lease_live(found.now):
            return sent
        time.sleep((self.windows.settle + CLOCK_RESOLUTION).total_seconds())
        again = self.store.head(found.key)
        if again is None:
            return None
        # The wait made our refresh older by settle: refresh once more, with no wait
        # this time (the version now replaced is young, so no collection chose it).
        if again.now - again.modified > self.windows.refresh_window:
            sent = time.monotonic()
            return sent if self._refresh(again) else None
        return sent

    # -- looking -----------------------------------------------------------------------

    def _look(self, keys: list[str]) -> dict[str, Sighting | None]:
        """What is stored of ``keys`` now (a listing or HEADs, whichever is cheaper)."""
        if len(keys) == 1:
            return survey(self.store, self.layout, keys, self.page_size)
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-look") as pool:
            return survey(self.store, self.layout, sorted(keys), self.page_size, pool.map)

    def _lease_live(self, now: datetime) -> bool:
        return any_live_lease(self.store, self.layout, now, self.windows.lease)


def _server_age(sighting: Sighting) -> float:
    """Seconds since it was modified, at least: by the store's clock when it answered."""
    return (sighting.stat.now - sighting.stat.modified).total_seconds()


def _since(at: float, now: float) -> timedelta:
    return timedelta(seconds=max(0.0, now - at))


def _store_now(seen: Sequence[Sighting]) -> datetime:
    """The store's clock now, from the latest answer among ``seen`` and time since."""
    latest = max(seen, key=lambda s: s.at)
    return latest.stat.now + timedelta(seconds=time.monotonic() - latest.at)
