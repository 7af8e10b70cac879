"""Average decoded frames over fixed windows aligned to the UTC clock.

Each window keeps, per quantity, the count, sum, minimum and maximum of the frames, and the
union of the frames' flags. Warm-up frames — those received before :meth:`Averager.warm_up`'s
deadline (after start or wake) and those a driver flags ``warming_up`` — are kept apart: they are
left out of the mean and counted in ``n_warmup``. A window that holds *only* warm-up frames is
still reported, from those frames, flagged ``warming_up``: data are never dropped silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from luftnett.edge.framing import Measurement

__all__ = ["Averager", "Stats"]

WARMING_UP = "warming_up"


@dataclass(slots=True)
class Stats:
    """Running statistics of one window (one stream of frames)."""

    n: int = 0
    count: dict[str, int] = field(default_factory=dict)
    total: dict[str, float] = field(default_factory=dict)
    low: dict[str, float] = field(default_factory=dict)
    high: dict[str, float] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)

    def add(self, m: Measurement) -> None:
        self.n += 1
        for k, v in m.values.items():
            if k in self.count:
                self.count[k] += 1
                self.total[k] += v
                if v < self.low[k]:
                    self.low[k] = v
                if v > self.high[k]:
                    self.high[k] = v
            else:
                self.count[k], self.total[k], self.low[k], self.high[k] = 1, v, v, v
        self.flags |= m.flags


@dataclass(slots=True)
class _Window:
    end: float
    used: Stats = field(default_factory=Stats)
    warmup: Stats = field(default_factory=Stats)


class Averager:
    """Collects measurements; :meth:`close_due` returns finished windows as reading dicts.

    A reading is ``{"ts", "window_s", "n_samples", "values", "flags", "n", "min", "max"}`` and
    ``n_warmup`` when frames were left out (no ``seq``: the outbox assigns it). ``ts`` is the
    window end. ``expected_n`` is how many frames a full window holds (None: unknown); a window
    with fewer than 75 % of them is flagged ``partial_window``. Empty windows produce nothing.
    """

    def __init__(self, window_s: float, expected_interval_s: float | None = None) -> None:
        self.window_s = window_s
        self.expected_n = window_s / expected_interval_s if expected_interval_s else None
        self._win: _Window | None = None
        self._warm_until = -math.inf
        self.serial: str | None = None
        self.warmup_frames = 0  # since start, left out of a mean

    def warm_up(self, until: float) -> None:
        """Treat frames received before UNIX time ``until`` as warm-up (after start or wake)."""
        self._warm_until = until

    @property
    def open_frames(self) -> int:
        """Frames in the window not yet closed."""
        return 0 if self._win is None else self._win.used.n + self._win.warmup.n

    def window_end(self, t: float) -> float:
        """End (UNIX seconds) of the window that holds time ``t``."""
        return (math.floor(t / self.window_s) + 1) * self.window_s

    def add(self, m: Measurement, t: float) -> list[dict[str, Any]]:
        """Add a measurement received at UNIX time ``t``; return readings of closed windows."""
        out = self.close_due(t)
        if self._win is None:
            self._win = _Window(end=self.window_end(t))
        if t < self._warm_until or WARMING_UP in m.flags:
            self._win.warmup.add(m)
        else:
            self._win.used.add(m)
        if m.serial:
            self.serial = m.serial
        return out

    def close_due(self, t: float) -> list[dict[str, Any]]:
        w = self._win
        if w is None or t < w.end:
            return []
        self._win = None
        return [self._reading(w)]

    def _reading(self, w: _Window) -> dict[str, Any]:
        if w.used.n:
            s, left_out = w.used, w.warmup.n
            flags = set(s.flags)
        else:  # only warm-up frames: report them, flagged
            s, left_out = w.warmup, 0
            flags = s.flags | {WARMING_UP}
        self.warmup_frames += left_out
        if self.expected_n and s.n < 0.75 * self.expected_n:
            flags.add("partial_window")
        names = sorted(s.count)
        reading: dict[str, Any] = {
            "ts": datetime.fromtimestamp(w.end, UTC).isoformat(),
            "window_s": self.window_s,
            "n_samples": s.n,
            "values": {k: round(s.total[k] / s.count[k], 3) for k in names},
            "flags": sorted(flags),
            "n": {k: s.count[k] for k in names},
            "min": {k: s.low[k] for k in names},
            "max": {k: s.high[k] for k in names},
        }
        if left_out:
            reading["n_warmup"] = left_out
        return reading
