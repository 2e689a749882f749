"""Touch records: one small write keeps many stored objects from collection.

A writer that finds content stored long ago must make it look recent to every
collection, or one may delete it after the writer was told it is stored. Copying each
object onto itself costs a request per object; a touch record costs one. The rules:

1. A record ``<prefix>/touches/<time>-<token>`` holds digests. Its last-modified time
   on the store counts as the last-modified time of every object it names, for every
   collection that reads it. Writers use records only once the protocol marker says
   collectors read them (``_protocol``); until then they refresh each object.
2. Keys are not written in key order: ``<time>`` is the writer's estimate of the
   store's clock, and records land out of order. A writer checks the clock in its
   PUT's answer: a record that landed more than :data:`LANDING_LIMIT` after the time
   in its key is not relied on (the writer refreshes its objects one by one instead).
3. A collection reads every record whose key time is at most :data:`LOOKBACK` before
   its threshold, at its start; and again, from :data:`LOOKBACK` before the store's
   clock at its previous reading, whenever the last reading is older than a quarter
   of ``settle`` before a delete (every DeleteObjects, retries included). It judges a
   record by its last-modified time, never by its key. ``LOOKBACK`` exceeds
   ``LANDING_LIMIT`` by more than any listing takes, so every record that landed since
   the previous reading is listed.
4. A record that landed after a reading may come too late for a delete already
   decided: a writer whose objects were old enough for a collection to have chosen
   them waits ``settle`` once after its record landed (if a lease is live), then
   looks at them again and writes back whatever vanished.
5. Records older than a collection's threshold no longer keep anything from it and
   are collected with stale uploads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from ._digest import Digest
from ._errors import NotExistError
from ._names import Layout
from ._store import Store

__all__ = ["LANDING_LIMIT", "LOOKBACK", "TouchLog", "decode_record", "write_record"]

#: How late after the time in its key a record may land and still be relied on.
LANDING_LIMIT = timedelta(minutes=1)
#: How far before its last reading a collection lists records again.
LOOKBACK = timedelta(minutes=5)
_MAGIC = b"s3repo touch record 1\n"
_DIGEST_BYTES = 32


def encode_record(digests: Iterable[Digest]) -> bytes:
    return _MAGIC + b"".join(digest.raw for digest in digests)


def decode_record(body: bytes) -> set[str]:
    """The hex digests a record names; none for a body that is not a record."""
    if not body.startswith(_MAGIC) or (len(body) - len(_MAGIC)) % _DIGEST_BYTES:
        return set()
    raw = memoryview(body)[len(_MAGIC) :]
    return {raw[i : i + _DIGEST_BYTES].hex() for i in range(0, len(raw), _DIGEST_BYTES)}


def write_record(
    store: Store, layout: Layout, digests: Iterable[Digest], store_now: datetime
) -> bool:
    """Write a record naming ``digests``; False if it cannot be relied on (rule 2).

    ``store_now`` is the writer's estimate of the store's clock; the record's key says
    it, and the PUT's answer tells how late the record landed after it.
    """
    key = layout.new_touch_key(store_now)
    keyed = layout.time_of_touch_key(key)
    assert keyed is not None, key
    landed = store.put(key, encode_record(digests))
    if landed - keyed <= LANDING_LIMIT:
        return True
    store.delete_quietly(key)  # harmless if left; collection would sweep it
    return False


class TouchLog:
    """The digests that records touched at or after ``threshold``, as one collection
    reads them (rule 3). Shared by the collection's threads."""

    def __init__(
        self, store: Store, layout: Layout, threshold: datetime, concurrency: int = 4
    ) -> None:
        self.store = store
        self.layout = layout
        self.threshold = threshold
        self.concurrency = concurrency
        self._touched: set[str] = set()
        self._seen: set[str] = set()
        self._since = threshold - LOOKBACK
        self._read_at = float("-inf")
        self._lock = threading.Lock()
        #: Listings and record reads so far (what a collection spends on records).
        self.requests = 0

    def read_within(self, seconds: float) -> float:
        """Read again unless the last reading began at most ``seconds`` ago; return
        when (``time.monotonic()``) the reading in force began."""
        with self._lock:
            if time.monotonic() - self._read_at > seconds:
                self._read()
            return self._read_at

    def touched(self, key: str) -> bool:
        """Whether the object key ``key`` is named by a record read so far."""
        return key[-64:] in self._touched

    def _read(self) -> None:
        sent_at = time.monotonic()
        clock: datetime | None = None
        wanted: list[str] = []
        start_after = self.layout.touch_key_floor(self._since)
        for page in self.store.list_pages(self.layout.touches, start_after):
            self.requests += 1
            if clock is None:
                clock = page.now
            for item in page.items:
                if item.key in self._seen or self.layout.time_of_touch_key(item.key) is None:
                    continue
                self._seen.add(item.key)
                if item.modified >= self.threshold:  # older ones keep nothing from us
                    wanted.append(item.key)
        if len(wanted) > 1:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3repo-touch") as pool:
                bodies = list(pool.map(self._body, wanted))
        else:
            bodies = [self._body(key) for key in wanted]
        for body in bodies:
            self._touched |= decode_record(body)
        self.requests += len(wanted)
        if clock is not None:
            self._since = max(self._since, clock - LOOKBACK)
        self._read_at = sent_at

    def _body(self, key: str) -> bytes:
        try:
            return self.store.read(key)
        except NotExistError:
            return b""  # collected meanwhile: it kept nothing from us either
