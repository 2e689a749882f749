"""Looking at many object keys at once: a LIST where it pays, a HEAD each elsewhere.

A HEAD per key costs a request per key even when everything is stored; a LIST of the
keys' range costs a request per thousand keys and tells size and last-modified time
as a HEAD would. Digests are uniform, so the key range the first pages cover tells how
many pages the rest would take, and the listing stops where HEADs become cheaper.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ._listing import key_before
from ._names import Layout
from ._store import Page, Stat, Store

__all__ = ["Sighting", "survey"]

Mapper = Callable[[Callable[[str], "Sighting | None"], Iterable[str]], Iterator["Sighting | None"]]


@dataclass(frozen=True)
class Sighting:
    """A stored object as a writer saw it, and when.

    ``at`` is ``time.monotonic()`` when the request that saw it was sent: the object is
    at most ``stat.now - stat.modified`` plus the time since ``at`` old.
    """

    stat: Stat
    at: float

    @property
    def key(self) -> str:
        return self.stat.key

    def age(self) -> float:
        """Seconds since it was last modified, at most (the store's times, elapsed since)."""
        return (self.stat.now - self.stat.modified).total_seconds() + time.monotonic() - self.at

    def born(self) -> float:
        """A ``time.monotonic()`` its last-modified time is not before."""
        return self.at - (self.stat.now - self.stat.modified).total_seconds()


def head(store: Store, key: str) -> Sighting | None:
    at = time.monotonic()
    found = store.head(key)
    return None if found is None else Sighting(found, at)


def _position(key: str) -> int | None:
    """Where an object key's digest lies in the hash space (its first 64 bits).

    None for a key that does not end in a digest (a stray key under ``objects/``).
    """
    try:
        return int(key[-64:-48], 16)
    except ValueError:
        return None


def survey(
    store: Store, layout: Layout, keys: list[str], page_size: int, mapper: Mapper = map
) -> dict[str, Sighting | None]:
    """What is stored of ``keys`` (sorted object keys): a Sighting each, None if absent.

    Listing pages through the repository's objects from the first key on. Once the
    key range the pages so far covered says the rest would take no fewer pages than
    there are keys left, those keys get a HEAD each, through ``mapper`` (a thread
    pool's ``map`` sends them concurrently).
    """
    found: dict[str, Sighting | None] = {}
    pending, unjudged = keys, []
    listing: Iterable[Page] = ()
    if len(keys) >= 2:  # one key: a HEAD is as cheap as a LIST, and tells the same
        listing = store.list_pages(layout.objects_shard(""), key_before(keys[0]), page_size)
    for pages, page in enumerate(listing, 1):
        if page.truncated and not page.items:
            break  # a page that says there is more, yet holds nothing: ask key by key
        cut = bisect.bisect_right(pending, page.items[-1].key) if page.truncated else len(pending)
        covered, pending = pending[:cut], pending[cut:]
        listed = {item.key: item for item in page.items}
        for key in covered:
            item = listed.get(key)
            if item is None:
                found[key] = None
            elif page.now is None:
                unjudged.append(key)  # no clock to tell its age by
            else:
                found[key] = Sighting(Stat(key, item.size, item.modified, page.now), page.sent_at)
        if not page.truncated or not pending:
            break
        reached = _position(page.items[-1].key)
        if reached is None:  # no estimate past a stray key: HEADs
            break
        start = _position(keys[0]) or 0
        pages_left = ((_position(pending[-1]) or 0) - reached) * pages / max(reached - start, 1)
        if pages_left >= len(pending):
            break
    asked = unjudged + pending
    for key, sighting in zip(asked, mapper(lambda key: head(store, key), asked), strict=True):
        found[key] = sighting
    return found
