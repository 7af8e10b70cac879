"""The agent's health: the retained status payload and the once-a-minute log summary.

Status (``<root>/v1/<device>/status``, retained, QoS 1) is published on every connect and every
``health_interval_s``: uptime, outbox depth, age of the oldest unsent reading, readings shed,
clock state, per sensor the frames decoded and error counts by category, and link quality where
a modem reports it (not yet: ``None``). Frame errors are not logged one by one (an SD card
wears out); the summary logs what changed in the last minute.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from luftnett import __version__
from luftnett.contracts import mqtt as contract

if TYPE_CHECKING:
    from luftnett.edge.agent import EdgeAgent

__all__ = ["SUMMARY_EVERY_S", "HealthReporter"]

log = logging.getLogger(__name__)

SUMMARY_EVERY_S = 60.0


class HealthReporter:
    def __init__(self, agent: EdgeAgent) -> None:
        self.agent = agent
        self._last_status = -float("inf")
        self._last_summary = time.monotonic()
        self._summarised: Counter[str] = Counter()
        self.link_quality_pct: float | None = None  # set by a modem integration, when there is one

    def due(self) -> bool:
        return time.monotonic() - self._last_status >= self.agent.cfg.health_interval_s

    def status(self, state: str = "online") -> contract.StatusPayload:
        a = self.agent
        self._last_status = time.monotonic()
        return contract.StatusPayload(
            device_id=a.cfg.device_id,
            state="online" if state == "online" else "offline",
            ts=datetime.now(UTC),
            agent_version=__version__,
            uptime_s=round(time.monotonic() - a.started, 3),
            outbox_depth=len(a.outbox),
            oldest_unsent_age_s=a.outbox.oldest_age_s(),
            readings_shed=a.outbox.shed_total,
            last_seq=a.outbox.next_seq - 1,
            clock_synced=not a.clock.suspect,
            link_quality_pct=self.link_quality_pct,
            sensors={
                s.cfg.name: contract.SensorHealth(
                    model=s.cfg.model,
                    port=s.cfg.port,
                    frames=s.frames,
                    errors=dict(s.errors),
                    awake=s.awake,
                )
                for s in a.sensors
            },
        )

    def tick(self) -> None:
        """Log a summary of the last minute's frames, errors and shed readings, if any."""
        now = time.monotonic()
        if now - self._last_summary < SUMMARY_EVERY_S:
            return
        self._last_summary = now
        totals = self.agent.counts
        totals["shed"] = self.agent.outbox.shed_total
        delta = totals - self._summarised
        self._summarised = totals
        if not delta:
            return
        level = logging.WARNING if delta["shed"] else logging.INFO
        log.log(
            level,
            "edge minute summary",
            extra={"counts": dict(delta), "outbox_depth": len(self.agent.outbox)},
        )
