"""Medians and ratios of samples: what a table row says about one case on one server."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from .cases import Case
from .context import Sample


@dataclass
class Row:
    """One case on one server: every repetition of both sides."""

    case: Case
    server: str  # "moto", "juicefs" or "-" (no server)
    ours: list[Sample]
    baseline: list[Sample]

    def samples(self, side: str) -> list[Sample]:
        """The repetitions of one side: "ours" or "baseline"."""
        return self.ours if side == "ours" else self.baseline

    def throughput(self, side: str) -> float:
        """The median throughput of a side, in the case's unit."""
        samples = self.samples(side)
        return self.case.scale(statistics.median(s.throughput for s in samples))

    @property
    def ratio(self) -> float:
        """Our median throughput over the baseline's: above 1, ours is faster."""
        return self.throughput("ours") / self.throughput("baseline")

    def memory(self, side: str) -> float:
        """MiB: the structure's traced size where the case measures one, else peak RSS."""
        samples = self.samples(side)
        values = [s.memory if s.memory is not None else s.peak_rss for s in samples]
        return statistics.median(values) / (1024 * 1024)

    @property
    def memory_ratio(self) -> float:
        return self.memory("ours") / self.memory("baseline")

    def requests(self, side: str) -> float | None:
        """The median number of requests a side sent to S3, where it used S3."""
        samples = self.samples(side)
        counts = [s.requests for s in samples]
        if any(c is None for c in counts):
            return None
        return statistics.median(counts)  # type: ignore[type-var]

    def cpu(self, side: str, server: bool = False) -> float | None:
        """Median CPU use during the timed section, in % of one core."""
        samples = self.samples(side)
        used = [s.server_cpu if server else s.cpu for s in samples]
        if any(u is None for u in used):
            return None
        return statistics.median(100 * u / s.seconds for u, s in zip(used, samples, strict=True))  # type: ignore[operator]

    @property
    def met(self) -> bool:
        fast = self.ratio >= self.case.aim
        aim = self.case.memory_aim
        return fast and (aim is None or self.memory_ratio <= aim)
