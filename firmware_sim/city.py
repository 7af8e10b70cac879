"""A small synthetic town for the demo: sites with a type, a location and a PM signal.

Issue 8 grows this into a city whose true field is known; for now each site has a base level by
type, a diurnal traffic cycle and noise, so the demo shows different, plausible series.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["DemoSite", "demo_sites"]

_BASE = {"traffic": 14.0, "school": 9.0, "residential": 7.0, "background": 5.0}
_TYPES = ("traffic", "school", "residential", "background", "traffic")


@dataclass(frozen=True, slots=True)
class DemoSite:
    site_id: str
    device_id: str
    name: str
    site_type: str
    lat: float
    lon: float
    serial: bytes

    def pm(self, rng: random.Random) -> tuple[float, float]:
        """(PM2.5, PM10) in µg/m³ now."""
        hour = datetime.now(UTC).hour + 1  # Europe/Oslo, roughly
        rush = math.exp(-((hour - 8) ** 2) / 4) + math.exp(-((hour - 16) ** 2) / 5)
        base = _BASE[self.site_type] * (1 + (0.8 * rush if self.site_type == "traffic" else 0.2))
        pm25 = max(0.0, rng.gauss(base, base * 0.15))
        return pm25, pm25 * rng.uniform(1.4, 1.9)


def demo_sites(n: int) -> list[DemoSite]:
    """``n`` sites around a small Norwegian town centre (59.74 N, 10.20 E)."""
    rng = random.Random(7)
    out = []
    for i in range(n):
        kind = _TYPES[i % len(_TYPES)]
        out.append(
            DemoSite(
                site_id=f"site-{i + 1:03d}",
                device_id=f"demo-{i + 1:03d}",
                name=f"{kind.title()} site {i + 1}",
                site_type=kind,
                lat=59.74 + rng.uniform(-0.02, 0.02),
                lon=10.20 + rng.uniform(-0.04, 0.04),
                serial=bytes([0xA0 + (i >> 8) % 16, i % 256]),
            )
        )
    return out
