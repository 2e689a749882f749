"""Many manifests into one: merging keeps what its inputs claim, compacting re-states it.

Collection reads every manifest it is given, so a source that writes a snapshot a day,
or an IO manager that writes a record per output, leaves a location that takes longer
to read each day. Two ways to make one file of many, which differ in what the result
may claim (see ``s3repo_core.manifest`` for the kinds):

- :func:`merge_manifests` joins manifests of one kind and claims no more than they
  did: its ``created_at`` is the oldest of theirs, so a merged snapshot holds the
  collection threshold back as far as its oldest input did, and merged records keep
  their oldest age;
- :func:`compact_manifests` joins manifests of any kinds into a *snapshot* stamped
  when its reading began, or with its oldest snapshot input's time if that is older:
  a record's objects were all stored by then, but a snapshot's source may have stored
  more since its own time, which only its next snapshot names.

Each distinct digest is written once, as its first input names it. Neither removes
its inputs: a caller that does so once the result is written replaces many files with
one and keeps every object live (records written while the inputs were read are not
among them, so must not be removed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from ._errors import InvalidArgumentError
from .manifest import (
    Manifest,
    ManifestInfo,
    ManifestKind,
    ManifestRow,
    _expand,
    read_manifest,
    write_manifest,
)

__all__ = ["compact_manifests", "merge_manifests"]

Sources = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


def merge_manifests(
    srcs: Sources,
    dest: str | os.PathLike[str],
    *,
    created_by: str = "s3repo merge",
    client: Any = None,
) -> ManifestInfo:
    """Write at ``dest`` one manifest of every digest the manifests under ``srcs`` name
    (locations as :func:`~s3repo_core.read_liveset` takes them), of their kind, with
    the oldest ``created_at`` among them and the labels they all share.

    InvalidArgumentError if they are of different kinds (a snapshot claims a whole
    liveset, a record only its objects: one file cannot say both), and whatever
    reading them raises (fail closed, as a collection reads them); nothing is
    written then.
    """
    manifests = _read_all(srcs, client, "merge")
    kinds: set[ManifestKind] = {manifest.kind for manifest in manifests}
    if len(kinds) > 1:
        snapshots = [m.location for m in manifests if m.kind == "snapshot"]
        records = [m.location for m in manifests if m.kind == "record"]
        raise InvalidArgumentError(
            f"cannot merge snapshots ({_some(snapshots)}) with records ({_some(records)}): "
            "compact them into a snapshot instead"
        )
    (kind,) = kinds
    return write_manifest(
        dest,
        _distinct_rows(manifests),
        created_by=created_by,
        created_at=min(manifest.created_at for manifest in manifests),
        kind=kind,
        labels=_shared_labels(manifests),
        client=client,
    )


def compact_manifests(
    srcs: Sources,
    dest: str | os.PathLike[str],
    *,
    created_by: str = "s3repo compact",
    client: Any = None,
) -> ManifestInfo:
    """Write at ``dest`` one snapshot of every digest the manifests under ``srcs`` name,
    of any kinds, stamped with the time this call began reading them (this machine's
    clock, as :func:`~s3repo_core.write_manifest` stamps) or the oldest input
    snapshot's, whichever is older. Fails closed as :func:`merge_manifests` does."""
    began = datetime.now(UTC)
    manifests = _read_all(srcs, client, "compact")
    snapshots = (manifest.created_at for manifest in manifests if manifest.kind == "snapshot")
    return write_manifest(
        dest,
        _distinct_rows(manifests),
        created_by=created_by,
        created_at=min([began, *snapshots]),
        kind="snapshot",
        client=client,
    )


def _read_all(srcs: Sources, client: Any, what: str) -> list[Manifest]:
    """Every manifest under ``srcs``, validated in full before anything is written."""
    if not isinstance(srcs, str | os.PathLike):
        srcs = list(srcs)
        if not srcs:
            raise InvalidArgumentError(f"nothing to {what}: give at least one manifest location")
    return [read_manifest(str(location), client=client) for location in _expand(srcs, client)]


def _distinct_rows(manifests: list[Manifest]) -> Iterator[ManifestRow]:
    seen: set[bytes] = set()
    for manifest in manifests:
        for row in manifest:
            if row.digest.raw not in seen:
                seen.add(row.digest.raw)
                yield row


def _shared_labels(manifests: list[Manifest]) -> Mapping[str, str]:
    first, *others = (manifest.labels for manifest in manifests)
    return {
        name: value
        for name, value in first.items()
        if all(other.get(name) == value for other in others)
    }


def _some(locations: list[str]) -> str:
    shown = ", ".join(locations[:3])
    return shown if len(locations) <= 3 else f"{shown} and {len(locations) - 3} more"
