"""Medians and ratios of samples: what a table row says about one case on one server."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from .cases import Case
from .context import Sample, Sizes


@dataclass
class Row:
    """One case on one server: every repetition of every side."""

    case: Case
    server: str  # "moto", "juicefs" or "-" (no server)
    sides: dict[str, list[Sample]]  # "ours", "baseline" and any other peer's, by name
    sizes: Sizes  # what the limits of the case's aim are computed from

    @property
    def best_peer(self) -> str:
        """The side that is the row's baseline: the fastest peer by median throughput,
        or the base where the case aims at each peer on its own."""
        if self.case.peer_time_aims:
            return "baseline"

        def median(side: str) -> float:
            return statistics.median(s.throughput for s in self.sides[side])

        return max((side for side in self.sides if side != "ours"), key=median)

    def samples(self, side: str) -> list[Sample]:
        """The repetitions of one side: "ours" or "baseline" (the best peer)."""
        return self.sides[self.best_peer if side == "baseline" else side]

    def peer_throughput(self, side: str) -> float:
        """The median throughput of the side called ``side`` ("baseline" is the base)."""
        return self.case.scale(statistics.median(s.throughput for s in self.sides[side]))

    def throughput(self, side: str) -> float:
        """The median throughput of a side, in the case's unit."""
        samples = self.samples(side)
        return self.case.scale(statistics.median(s.throughput for s in samples))

    @property
    def ratio(self) -> float:
        """Our median throughput over the baseline's: above 1, ours is faster."""
        return self.throughput("ours") / self.throughput("baseline")

    def peer_ratio(self, side: str) -> float:
        """Our median throughput over that of the peer called ``side``."""
        return self.throughput("ours") / self.peer_throughput(side)

    def memory(self, side: str) -> float:
        """MiB: the structure's traced size where the case measures one, else peak RSS."""
        samples = self.samples(side)
        values = [s.memory if s.memory is not None else s.peak_rss for s in samples]
        return statistics.median(values) / (1024 * 1024)

    @property
    def memory_ratio(self) -> float:
        return self.memory("ours") / self.memory("baseline")

    def requests(self, side: str) -> float | None:
        """The median number of requests a side sent to S3, where it used S3 (as the
        server counted them, for a case that counts there)."""
        return self._requests(self.samples(side))

    def peer_requests(self, side: str) -> float | None:
        """The median number of requests of the side called ``side`` ("baseline" is the
        base)."""
        return self._requests(self.sides[side])

    def _requests(self, samples: list[Sample]) -> float | None:
        counts = [s.server_requests if self.case.count_on_server else s.requests for s in samples]
        if any(c is None for c in counts):
            return None
        return statistics.median(counts)  # type: ignore[type-var]

    def deletes(self, side: str) -> float | None:
        """The median number of DeleteObjects requests a side sent."""
        counts = [s.deletes for s in self.samples(side)]
        if any(c is None for c in counts):
            return None
        return statistics.median(counts)  # type: ignore[type-var]

    def _within(self, limit: Any, counted: float | None) -> bool:
        return limit is None or (counted is not None and counted <= limit(self.sizes))

    def cpu(self, side: str, server: bool = False) -> float | None:
        """Median CPU use during the timed section, in % of one core."""
        samples = self.samples(side)
        used = [s.server_cpu if server else s.cpu for s in samples]
        if any(u is None for u in used):
            return None
        return statistics.median(100 * u / s.seconds for u, s in zip(used, samples, strict=True))  # type: ignore[operator]

    @property
    def met(self) -> bool:
        fast = self.ratio >= self.case.aim * (1 - 1e-9)  # 1 / time_aim, rounded
        aim = self.case.memory_aim
        peers = all(
            self.peer_ratio(side) >= (1 - 1e-9) / time_aim
            for side, time_aim in self.case.peer_time_aims
        )
        return (
            fast
            and peers
            and (aim is None or self.memory_ratio <= aim)
            and self._within(self.case.request_limit, self.requests("ours"))
            and self._within(self.case.delete_limit, self.deletes("ours"))
        )
