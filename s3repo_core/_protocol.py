"""The repository's protocol marker: which collection protocol its collectors follow.

Touch records (``_touches``) keep objects only for collectors that read them; a
collector of an older s3repo deletes a touched object as if no writer had found it.
So writers use touch records only once ``<prefix>/protocol.json`` says the
repository's collectors are of protocol 2 or later, which an operator states (with
:func:`enable_touch_records`, or ``s3repo protocol --enable-touch-records``) once every
collector that runs on the repository is. Until then writers refresh each object on
its own, as before. A collector whose protocol is older than the marker's refuses to
run, so that later protocols can rely on the marker too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ._errors import NotExistError, NotSupportedError
from ._names import Layout
from ._store import Store

__all__ = [
    "COLLECTOR_PROTOCOL",
    "ProtocolMarker",
    "check_collector",
    "enable_touch_records",
    "read_marker",
]

#: The collection protocol this version's collectors follow: 2 reads touch records.
COLLECTOR_PROTOCOL = 2
TOUCH_RECORDS_FROM = 2


@dataclass(frozen=True)
class ProtocolMarker:
    """What ``protocol.json`` says; protocol 1 (leases only) where it is missing."""

    collectors: int = 1

    @property
    def touch_records(self) -> bool:
        return self.collectors >= TOUCH_RECORDS_FROM


def read_marker(store: Store, layout: Layout) -> ProtocolMarker:
    """The repository's marker. A marker that cannot be parsed is taken as missing, so
    that writers fall back to the per-object refresh every collector honours."""
    try:
        body = store.read(layout.protocol)
    except NotExistError:
        return ProtocolMarker()
    try:
        collectors = json.loads(body)["collectors"]
    except (ValueError, KeyError, TypeError):
        return ProtocolMarker()
    return ProtocolMarker(collectors if isinstance(collectors, int) else 1)


def enable_touch_records(store: Store, layout: Layout) -> None:
    """State that every collector of the repository reads touch records.

    Only an operator knows that no older collector runs on the repository any more,
    so nothing calls this on its own. The marker never goes back to an older protocol.
    """
    if read_marker(store, layout).collectors >= COLLECTOR_PROTOCOL:
        return
    body = {"collectors": COLLECTOR_PROTOCOL, "why": "collectors read touches/ records"}
    store.put(layout.protocol, json.dumps(body).encode())


def check_collector(store: Store, layout: Layout, name: str) -> ProtocolMarker:
    """The marker, or NotSupportedError if it asks for a newer collector than this one."""
    marker = read_marker(store, layout)
    if marker.collectors > COLLECTOR_PROTOCOL:
        raise NotSupportedError(
            f"{name} asks for collectors of protocol {marker.collectors} "
            f"(see {store.where(layout.protocol)}); this s3repo collects with protocol "
            f"{COLLECTOR_PROTOCOL}: upgrade it to collect this repository",
            key=layout.protocol,
        )
    return marker
