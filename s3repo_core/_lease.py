"""Collection leases: how writers learn that a collection may be deleting right now.

A collection writes ``<prefix>/collections/<token>`` before it lists anything, rewrites
it every ``heartbeat`` while it runs, and removes it after its last delete has been
answered, on every path out of the run that it can reach. A writer that finds an
object written or refreshed less than ``settle`` ago checks for leases; only if there
is a live one does it wait out ``settle`` and look again (see ``S3Repository``). Leases
also keep two collections off the same shards at once.

The rule that makes a dead collector harmless:

    A lease whose Last-Modified is more than ``ttl`` ago (on the server's clock) is
    dead: writers ignore it and the next collection removes it. A collector sends a
    DeleteObjects only while its lease is certain to stay live until the send plus
    ``settle``, judged from the send time of its last acknowledged heartbeat.

Since S3 may apply a DeleteObjects up to three quarters of ``settle`` after it is sent,
every delete lands while its lease is live, so writers that see no live lease know no
delete is in flight. Hence ``ttl > settle + heartbeat + margin``: after each heartbeat
the collector may go on deleting for about one more heartbeat, which leaves the next
one that long to be acknowledged. A killed collector blocks others for at most ``ttl``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ._errors import ConflictError, InvalidArgumentError, NotExistError, UnavailableError
from ._names import Layout
from ._store import Store

__all__ = [
    "HeldLease",
    "Lease",
    "LeaseTimes",
    "any_live_lease",
    "list_leases",
    "read_leases",
    "take_lease",
]

log = logging.getLogger("s3repo")

#: S3 times (Last-Modified, Date) are whole seconds: a lease allows for two truncations.
_CLOCK_MARGIN = timedelta(seconds=2)


@dataclass(frozen=True)
class LeaseTimes:
    """How often a lease is renewed and how long it lives without renewal.

    ``heartbeat`` defaults to half of ``settle``, between 1 and 30 seconds. ``ttl`` may
    not be shorter than ``settle + 2 * heartbeat + 2 s``, which leaves one heartbeat's
    time for a renewal to be acknowledged; it defaults to ``settle + 4 * heartbeat +
    2 s``, so that three renewals in a row may be late or lost before deletes pause.
    """

    settle: timedelta
    heartbeat: timedelta
    ttl: timedelta

    @classmethod
    def derive(
        cls,
        settle: timedelta,
        heartbeat: timedelta | None = None,
        ttl: timedelta | None = None,
    ) -> LeaseTimes:
        if heartbeat is None:
            heartbeat = min(timedelta(seconds=30), max(settle / 2, timedelta(seconds=1)))
        if heartbeat <= timedelta(0):
            raise InvalidArgumentError("the lease heartbeat must be positive")
        floor = cls.floor(settle, heartbeat)
        if ttl is None:
            ttl = settle + 4 * heartbeat + _CLOCK_MARGIN
        elif ttl < floor:
            raise InvalidArgumentError(
                f"lease_ttl {ttl.total_seconds():g}s is shorter than settle + 2 * heartbeat "
                f"+ {_CLOCK_MARGIN.total_seconds():g}s = {floor.total_seconds():g}s"
            )
        return cls(settle, heartbeat, ttl)

    @staticmethod
    def floor(settle: timedelta, heartbeat: timedelta) -> timedelta:
        """The shortest ttl that leaves a heartbeat's time to renew before deletes stop."""
        return settle + 2 * heartbeat + _CLOCK_MARGIN

    def is_dead(self, modified: datetime, now: datetime) -> bool:
        """Whether a lease last rewritten at ``modified`` is dead at server time ``now``."""
        return now - modified > self.ttl


@dataclass(frozen=True)
class Lease:
    key: str
    shards: frozenset[str]
    modified: datetime


def list_leases(store: Store, layout: Layout) -> list[tuple[str, datetime]]:
    """(key, last modified) of every lease, live or dead."""
    return [
        (item.key, item.modified)
        for page in store.list_pages(layout.collections)
        for item in page.items
    ]


def read_leases(store: Store, listed: list[tuple[str, datetime]]) -> list[Lease]:
    """The leases ``listed`` with the shards each holds, oldest first.

    A lease whose body cannot be parsed holds every shard: it is respected until it dies.
    """
    result = []
    for key, modified in listed:
        try:
            body = store.read(key)
        except NotExistError:
            continue  # released meanwhile
        try:
            shards = frozenset(json.loads(body).get("shards", []))
        except (ValueError, AttributeError, TypeError):
            shards = frozenset()
        result.append(Lease(key, shards, modified))
    return sorted(result, key=lambda lease: (lease.modified, lease.key))


def any_live_lease(store: Store, layout: Layout, now: datetime, times: LeaseTimes) -> bool:
    """Whether any live lease exists at server time ``now``: one LIST, for writers."""
    page = next(store.list_pages(layout.collections))
    return any(not times.is_dead(item.modified, now) for item in page.items)


class HeldLease:
    """A lease this process wrote: renewed on a thread until :meth:`release`.

    :meth:`wait_live_for` is what a collector calls before each delete it sends.
    """

    def __init__(self, store: Store, key: str, body: dict[str, Any], times: LeaseTimes) -> None:
        self.store = store
        self.key = key
        self.times = times
        self._body = json.dumps({**body, "host": socket.gethostname(), "pid": os.getpid()}).encode()
        self._acked_sent_at: float | None = None  # monotonic send time of the last ack
        self._acked = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats = 0

    @property
    def where(self) -> str:
        return self.store.where(self.key)

    def write(self) -> None:
        """Write (or rewrite) the lease; on success, it is live from the send on."""
        sent_at = time.monotonic()
        self.store.put(self.key, self._body)
        with self._acked:
            self._acked_sent_at = sent_at
            self.beats += 1
            self._acked.notify_all()

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(
            target=self._beat, name="s3repo-lease-heartbeat", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        """Renew every ``heartbeat`` from the previous renewal's send, however slow."""
        interval = self.times.heartbeat.total_seconds()
        due = time.monotonic() + interval
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due = time.monotonic() + interval
            try:
                self.write()
            except Exception as exc:  # the deleters pause, then fail, if renewals keep failing
                log.warning("could not renew the collection lease %s: %s", self.where, exc)

    def live_until(self) -> float:
        """The monotonic time until which the lease is certainly live (-inf if never)."""
        if self._acked_sent_at is None:
            return float("-inf")
        return self._acked_sent_at + (self.times.ttl - _CLOCK_MARGIN).total_seconds()

    def is_live_for(self, seconds: float) -> bool:
        """Whether the lease stays live for ``seconds`` from now."""
        return self.live_until() - time.monotonic() >= seconds

    def wait_live_for(self, seconds: float) -> None:
        """Return once the lease stays live ``seconds`` from now.

        A late heartbeat is waited for, as long as the lease may still be renewed; if
        none is acknowledged within ``ttl``, UnavailableError.
        """
        deadline = time.monotonic() + self.times.ttl.total_seconds()
        with self._acked:
            while not self.is_live_for(seconds):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UnavailableError(
                        f"the collection lease {self.where} could not be renewed for "
                        f"{self.times.ttl.total_seconds():g}s: no more deletes are sent"
                    )
                self._acked.wait(min(left, self.times.heartbeat.total_seconds()))

    def release(self) -> None:
        """Stop renewing and remove the lease; a failure is logged (it dies in ``ttl``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self.store.delete(self.key)
        except Exception as exc:
            log.warning(
                "could not remove the collection lease %s (it dies in %ss): %s",
                self.where,
                self.times.ttl.total_seconds(),
                exc,
            )


def take_lease(
    store: Store,
    layout: Layout,
    name: str,
    shards: Sequence[str],
    times: LeaseTimes,
    body: dict[str, Any] | None = None,
) -> HeldLease:
    """Write a lease on ``shards`` and renew it, then yield to any older live one that
    holds one of them (ConflictError); what deletes objects holds one (collections, and
    verify's quarantine).

    Whatever fails after the lease is written, it is removed before the error
    propagates; dead leases (see the module docstring) are removed on the way.
    ``name`` is the repository's, for the message.
    """
    held = list(shards)
    lease = HeldLease(store, layout.new_lease_key(), {"shards": held, **(body or {})}, times)
    try:
        lease.write()
        lease.start_heartbeat()
        now = store.server_now(layout.collections)
        listed = list_leases(store, layout)
        live = [(k, modified) for k, modified in listed if not times.is_dead(modified, now)]
        for other in read_leases(store, live):
            if other.key == lease.key:
                break
            if not other.shards or other.shards & set(held):
                raise ConflictError(
                    f"another collection of {name} holds shards "
                    f"{sorted(other.shards & set(held)) or 'all'} "
                    f"(lease {other.key}, renewed {other.modified:%Y-%m-%d %H:%M:%S}Z; "
                    f"it dies {times.ttl.total_seconds():g}s after its last renewal)"
                )
        for dead, modified in listed:
            if times.is_dead(modified, now):
                store.delete_quietly(dead)
    except BaseException:
        lease.release()
        raise
    return lease
