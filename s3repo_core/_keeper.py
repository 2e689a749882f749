"""The writer's half of the collection protocol: content found stored is made to stay.

A writer that finds its content already stored uploads nothing; it must then make
sure no collection running now deletes it. ``Windows`` holds the times writers and
collections agree on; ``Keeper.keep`` is what a writer calls with what it found. Both
work on any ``Store``, so every repository implementation shares them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ._errors import InvalidArgumentError
from ._lease import LeaseTimes, any_live_lease
from ._names import Layout
from ._store import Stat, Store

__all__ = [
    "CLOCK_RESOLUTION",
    "DEFAULT_GRACE",
    "DEFAULT_REFRESH_WINDOW",
    "DEFAULT_SETTLE",
    "Keeper",
    "Windows",
]

DEFAULT_REFRESH_WINDOW = timedelta(hours=1)
DEFAULT_GRACE = timedelta(hours=24)
DEFAULT_SETTLE = timedelta(seconds=60)
#: S3 times (Last-Modified, Date) are whole seconds: every comparison allows for it.
CLOCK_RESOLUTION = timedelta(seconds=1)

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


class Keeper:
    """Keeps content a writer found stored in ``store`` (laid out as ``layout``)."""

    def __init__(self, store: Store, layout: Layout, windows: Windows, refresh: Refresh) -> None:
        self.store = store
        self.layout = layout
        self.windows = windows
        self._refresh = refresh

    def kept(self, found: Stat | None, size: int) -> bool:
        """Whether content of ``size`` bytes found as ``found`` is stored and will stay."""
        return found is not None and found.size == size and self.keep(found)

    def keep(self, found: Stat, *, ours: bool = False) -> bool:
        """A writer found ``found.key`` stored: make sure it stays.

        On return the object is no older than ``refresh_window``, which is what the
        guarantee needs (a collection deletes only what is older than its threshold,
        at least ``grace`` before it started). Two dangers, each handled:

        - modified within ``settle``: the object may have been written back just after a
          collection decided to delete its previous version, whose delete may still be
          in flight. While a lease is live the writer waits that out, then looks again.
        - older than ``refresh_window``: it is refreshed. A refresh needs a wait after it
          only if the old version was old enough for some collection to have chosen it
          (older than ``grace``, less a margin); a younger one no collection can delete.

        ``ours`` says the writer itself confirmed this object moments ago (a batch that
        looks again at what it stored early): a collection may then have chosen none of
        its recent versions, as none was older than ``grace``, so the first danger does
        not arise and the writer need not wait, however young it finds the object.

        Returns False if the object vanished meanwhile, so the caller writes it again.
        """
        windows = self.windows
        settled = windows.settle + CLOCK_RESOLUTION
        if found.now - found.modified < settled and not ours:
            if self._lease_live(found.now):
                time.sleep(max(0.0, (found.modified + settled - found.now).total_seconds()))
            again = self.store.head(found.key)
            if again is None:
                return False
            # The wait may have made it older than refresh_window: refresh it then.
            if again.now - again.modified > windows.refresh_window:
                return self._refresh_and_settle(again)
            return True
        if found.now - found.modified <= windows.refresh_window:
            return True
        return self._refresh_and_settle(found)

    def _lease_live(self, now: datetime) -> bool:
        return any_live_lease(self.store, self.layout, now, self.windows.lease)

    def _refresh_and_settle(self, found: Stat) -> bool:
        """Refresh ``found``; wait out ``settle`` only if a collection could have chosen it.

        If the old version was old enough by then for a collection to have chosen it,
        its delete may land for ``settle``: while a lease is live, wait that out and
        look again. Otherwise (the usual case: objects are refreshed an hour old and
        collected a day old) no wait is needed. False if the object vanished.
        """
        found_at = time.monotonic()
        if not self._refresh(found):
            return False
        # How old the old version was when the refresh landed, by the whole-second times
        # a collector compares (it chooses only what is older than grace plus a second,
        # by its own Date): a second's margin for our Date's truncation.
        oldest = found.now - found.modified + timedelta(seconds=time.monotonic() - found_at)
        if oldest + CLOCK_RESOLUTION < self.windows.grace:
            return True
        if self._lease_live(found.now):
            time.sleep((self.windows.settle + CLOCK_RESOLUTION).total_seconds())
            again = self.store.head(found.key)
            if again is None:
                return False
            # The wait made our refresh older by settle: refresh once more, with no wait
            # this time (the version now replaced is young, so no collection chose it).
            if again.now - again.modified > self.windows.refresh_window:
                return self._refresh(again)
        return True
