"""What a collection did: the report every implementation and orchestrator shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["MAX_LISTED_INVALID", "CollectReport", "DeleteFailure", "human_size"]

#: Invalid keys listed in a report; more are counted.
MAX_LISTED_INVALID = 1000


def human_size(size: int) -> str:
    """``size`` bytes in the largest binary unit that keeps it >= 1, e.g. '1.5 MiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


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
    touch_records_removed: int = 0
    #: Objects ``verify`` moved to ``quarantine/`` older than the threshold, purged.
    quarantine_removed: int = 0
    #: Delete requests answered SlowDown (not applied), each sent again after a backoff.
    throttled: int = 0
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
            "touch_records_removed",
            "quarantine_removed",
            "throttled",
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
            f"{self.multipart_aborted} multipart uploads aborted, "
            f"{self.quarantine_removed} quarantined objects purged, in {self.duration:.1f}s"
        )

    def rows(self) -> list[tuple[str, int, int | None]]:
        """(category, objects, bytes or None) of what was kept and deleted: the one
        table the Dagster UI and the command line both show."""
        return [
            ("live (named by a manifest)", self.live, self.live_bytes),
            ("kept as recent (modified after the threshold)", self.kept_recent, self.recent_bytes),
            (
                "would collect" if self.dry_run else "collected",
                self.collected,
                self.bytes_collected,
            ),
            ("invalid keys under objects/ (never deleted)", self.invalid_count, None),
            ("stale uploads removed", self.uploads_removed, None),
            ("multipart uploads aborted", self.multipart_aborted, None),
            ("quarantined objects purged", self.quarantine_removed, None),
            ("refused deletions", len(self.errors), None),
            *(
                [("deletes throttled (SlowDown) and sent again", self.throttled, None)]
                if self.throttled
                else []
            ),
            ("scanned", self.scanned, self.scanned_bytes),
        ]
