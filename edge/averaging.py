"""Average decoded frames over fixed windows aligned to the UTC clock."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from luftnett.edge.framing import Measurement

__all__ = ["Averager"]


@dataclass
class _Window:
    end: float
    n: int = 0
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    flags: set[str] = field(default_factory=set)
    serial: str | None = None


class Averager:
    """Collects measurements; :meth:`close_due` returns finished windows as reading dicts.

    A reading is ``{"ts", "window_s", "n_samples", "values", "flags"}`` (no ``seq``: the outbox
    assigns it). ``ts`` is the window end. Empty windows produce nothing.
    """

    def __init__(self, window_s: float, expected_interval_s: float | None = None) -> None:
        self.window_s = window_s
        self.expected = window_s / expected_interval_s if expected_interval_s else None
        self._win: _Window | None = None
        self.serial: str | None = None

    def _end_for(self, t: float) -> float:
        return (math.floor(t / self.window_s) + 1) * self.window_s

    def add(self, m: Measurement, t: float) -> list[dict[str, Any]]:
        """Add a measurement received at UNIX time ``t``; return readings of closed windows."""
        out = self.close_due(t)
        if self._win is None:
            self._win = _Window(end=self._end_for(t))
        w = self._win
        w.n += 1
        for k, v in m.values.items():
            w.sums[k] += v
            w.counts[k] += 1
        w.flags |= m.flags
        if m.serial:
            self.serial = m.serial
        return out

    def close_due(self, t: float) -> list[dict[str, Any]]:
        w = self._win
        if w is None or t < w.end:
            return []
        self._win = None
        flags = set(w.flags)
        if self.expected and w.n < 0.75 * self.expected:
            flags.add("partial_window")
        return [
            {
                "ts": datetime.fromtimestamp(w.end, UTC).isoformat(),
                "window_s": self.window_s,
                "n_samples": w.n,
                "values": {k: round(w.sums[k] / w.counts[k], 3) for k in sorted(w.sums)},
                "flags": sorted(flags),
            }
        ]
