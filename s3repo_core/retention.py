"""Retention as code: which record manifests to keep, and retiring the rest.

Records (see ``records``) keep their objects for as long as they exist, so what is
kept is decided by which records are: a record of an asset's materialization is kept
while it is among the last ``keep_last`` materializations of its asset and partition
**or** younger than ``keep_within`` (a union, as restic's keep rules are); a record of
anything else (an op's output) by its age only. Retiring a record deletes the file;
its objects go at the next collection unless another record or a snapshot names them.

The order of materializations is not in the records: it is whatever the caller knows
(Dagster's event log), given as ``latest(asset, partition, n)``, the run ids of the
newest ``n``. A record whose run is not among them, as after a crash between writing
the record and reporting the materialization, is kept by its age only; so is one
whose asset is unknown to the caller (``latest`` returns nothing).

Records are grouped by the labels the IO manager writes (:data:`ASSET`,
:data:`PARTITION`, :data:`RUN_ID`); a snapshot is never retired here. A record may
carry its policy too (:data:`KEEP_LAST`, :data:`KEEP_WITHIN_DAYS`, as its writer
resolved it from the asset's definition): the newest record of a group says the
group's policy, so retention needs no access to the definitions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ._errors import InvalidArgumentError
from .manifest import ManifestInfo, remove_manifest

__all__ = [
    "ASSET",
    "KEEP_LAST",
    "KEEP_WITHIN_DAYS",
    "OUTPUT",
    "PARTITION",
    "RUN_ID",
    "Judged",
    "RetentionDecision",
    "RetentionPolicy",
    "apply_retention",
    "decide_retention",
    "policy_from_labels",
    "policy_from_metadata",
    "policy_labels",
]

#: The labels of a record that retention reads.
ASSET = "asset"
PARTITION = "partition"
RUN_ID = "run_id"
OUTPUT = "output"
KEEP_LAST = "keep_last"
KEEP_WITHIN_DAYS = "keep_within_days"

#: ``latest(asset, partition, n)``: the run ids of the newest ``n`` materializations.
Latest = Callable[[str, str | None, int], Sequence[str]]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Keep the last ``keep_last`` materializations, and whatever is younger than
    ``keep_within``. ``keep_last`` is at least 1: the latest is always kept."""

    keep_last: int = 3
    keep_within: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        if isinstance(self.keep_last, bool) or not isinstance(self.keep_last, int):
            raise InvalidArgumentError(f"keep_last is an integer, got {self.keep_last!r}")
        if self.keep_last < 1:
            raise InvalidArgumentError(
                f"keep_last is at least 1 (the latest materialization is always kept), "
                f"got {self.keep_last}"
            )
        if not isinstance(self.keep_within, timedelta) or self.keep_within < timedelta(0):
            raise InvalidArgumentError(
                f"keep_within is a timedelta of at least 0, got {self.keep_within!r}"
            )


@dataclass(frozen=True, slots=True)
class Judged:
    """One record and why it is kept or retired."""

    record: ManifestInfo
    reason: str

    @property
    def asset(self) -> str | None:
        return self.record.labels.get(ASSET)


@dataclass(frozen=True, slots=True)
class RetentionDecision:
    """What retention keeps and retires, each with its reason."""

    kept: tuple[Judged, ...]
    retired: tuple[Judged, ...]

    def summary(self) -> str:
        return f"{len(self.kept)} records kept, {len(self.retired)} retired"


def decide_retention(
    records: Iterable[ManifestInfo],
    *,
    now: datetime,
    latest: Latest,
    policy: RetentionPolicy | Callable[[str], RetentionPolicy] = RetentionPolicy(),
    default: RetentionPolicy = RetentionPolicy(),
    too_young: timedelta = timedelta(0),
) -> RetentionDecision:
    """Which ``records`` the policy keeps, judged at ``now``.

    ``policy`` is one policy, or a function of the asset (its user string) to its
    policy, for groups whose newest record carries none; ``default`` is the policy of
    records that are of no asset (op outputs) and carry none, of which only
    ``keep_within`` counts. A record younger than ``too_young`` is kept
    whatever the policy: its materialization may not be reported yet (pass the
    repository's grace). Snapshots are left out of both lists.
    """
    policy_of = policy if callable(policy) else (lambda _asset: policy)
    kept: list[Judged] = []
    retired: list[Judged] = []
    groups: dict[tuple[str, str | None], list[ManifestInfo]] = {}
    for record in records:
        if record.kind != "record":
            continue
        if now - record.created_at < too_young:
            kept.append(Judged(record, "too young to judge"))
            continue
        asset = record.labels.get(ASSET)
        if asset is None:
            rules = policy_from_labels(record.labels, default)
            if now - record.created_at < rules.keep_within:
                kept.append(Judged(record, f"an op output younger than {_days(rules)}"))
            else:
                retired.append(Judged(record, f"an op output older than {_days(rules)}"))
            continue
        groups.setdefault((asset, record.labels.get(PARTITION)), []).append(record)
    for (asset, partition), members in groups.items():
        newest = max(members, key=lambda record: record.created_at)
        rules = policy_from_labels(newest.labels, policy_of(asset))
        runs = list(latest(asset, partition, rules.keep_last))[: rules.keep_last]
        for record in members:
            run_id = record.labels.get(RUN_ID)
            if run_id is not None and run_id in runs:
                place = runs.index(run_id) + 1
                kept.append(
                    Judged(record, f"materialization {place} of the last {rules.keep_last}")
                )
            elif now - record.created_at < rules.keep_within:
                kept.append(Judged(record, f"younger than {_days(rules)}"))
            else:
                retired.append(
                    Judged(
                        record, f"not among the last {rules.keep_last}, older than {_days(rules)}"
                    )
                )
    return RetentionDecision(tuple(kept), tuple(retired))


def apply_retention(decision: RetentionDecision, *, client: Any = None) -> int:
    """Delete the records ``decision`` retires; how many. ``client`` as ``remove_manifest``."""
    for judged in decision.retired:
        remove_manifest(judged.record.location, client=client)
    return len(decision.retired)


def policy_from_metadata(metadata: Mapping[str, Any], default: RetentionPolicy) -> RetentionPolicy:
    """``default`` overridden by ``s3repo/keep_last`` and ``s3repo/keep_within_days``."""
    keep_last = metadata.get("s3repo/keep_last", default.keep_last)
    days = metadata.get("s3repo/keep_within_days")
    keep_within = default.keep_within if days is None else _as_days(days)
    return RetentionPolicy(_as_int(keep_last), keep_within)


def policy_from_labels(labels: Mapping[str, str], default: RetentionPolicy) -> RetentionPolicy:
    """The policy a record carries, over ``default``; a label that does not parse is
    an InvalidArgumentError (retention then retires nothing)."""
    if KEEP_LAST not in labels and KEEP_WITHIN_DAYS not in labels:
        return default
    try:
        keep_last = int(labels.get(KEEP_LAST, default.keep_last))
        days = labels.get(KEEP_WITHIN_DAYS)
        keep_within = default.keep_within if days is None else timedelta(days=float(days))
    except ValueError as error:
        raise InvalidArgumentError(f"a record's retention labels do not parse: {error}") from None
    return RetentionPolicy(keep_last, keep_within)


def policy_labels(policy: RetentionPolicy) -> dict[str, str]:
    """The labels that carry ``policy`` in a record."""
    return {
        KEEP_LAST: str(policy.keep_last),
        KEEP_WITHIN_DAYS: f"{policy.keep_within.total_seconds() / 86400:g}",
    }


def _as_int(value: Any) -> int:
    value = getattr(value, "value", value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"s3repo/keep_last is an integer, got {value!r}")
    return value


def _as_days(value: Any) -> timedelta:
    value = getattr(value, "value", value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidArgumentError(f"s3repo/keep_within_days is a number >= 0, got {value!r}")
    return timedelta(days=value)


def _days(policy: RetentionPolicy) -> str:
    return f"{policy.keep_within.total_seconds() / 86400:g} days"
