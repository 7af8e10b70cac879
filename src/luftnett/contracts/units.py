"""Pollutants and other measured quantities, their units, and the reading flag registry.

The quantity name carries its unit (``pm25_ugm3``); this registry is the one place that says
which names exist, what they mean and whether the database keeps them in a column of their own
(the rest travel in ``readings.extra``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag

__all__ = ["COLUMN_QUANTITIES", "FLAGS_VERSION", "QUANTITIES", "Quantity", "ReadingFlag"]


@dataclass(frozen=True, slots=True)
class Quantity:
    name: str
    unit: str
    description: str
    column: bool  # stored in a column of its own (else in readings.extra)


_ALL = (
    Quantity("pm1_ugm3", "µg/m³", "PM1 mass concentration (atmospheric / as reported)", True),
    Quantity("pm25_ugm3", "µg/m³", "PM2.5 mass concentration (atmospheric / as reported)", True),
    Quantity("pm4_ugm3", "µg/m³", "PM4 mass concentration (SPS30)", False),
    Quantity("pm10_ugm3", "µg/m³", "PM10 mass concentration (atmospheric / as reported)", True),
    Quantity("pm1_cf1", "µg/m³", "PM1, Plantower CF=1 value", False),
    Quantity("pm25_cf1", "µg/m³", "PM2.5, Plantower CF=1 value", False),
    Quantity("pm10_cf1", "µg/m³", "PM10, Plantower CF=1 value", False),
    Quantity("no2_ppb", "ppb", "NO2 mixing ratio (may be negative near zero)", True),
    Quantity("temperature_c", "°C", "air temperature at the sensor", True),
    Quantity("rh_pct", "%", "relative humidity at the sensor", True),
    Quantity("nc03_per_01l", "#/0.1 L", "particles > 0.3 µm (Plantower count)", False),
    Quantity("nc05_per_01l", "#/0.1 L", "particles > 0.5 µm (Plantower count)", False),
    Quantity("nc10_per_01l", "#/0.1 L", "particles > 1.0 µm (Plantower count)", False),
    Quantity("nc25_per_01l", "#/0.1 L", "particles > 2.5 µm (Plantower count)", False),
    Quantity("nc50_per_01l", "#/0.1 L", "particles > 5.0 µm (Plantower count)", False),
    Quantity("nc100_per_01l", "#/0.1 L", "particles > 10 µm (Plantower count)", False),
    Quantity("nc05_cm3", "#/cm³", "number concentration 0.3–0.5 µm (SPS30)", False),
    Quantity("nc1_cm3", "#/cm³", "number concentration 0.3–1.0 µm (SPS30)", False),
    Quantity("nc25_cm3", "#/cm³", "number concentration 0.3–2.5 µm (SPS30)", False),
    Quantity("nc4_cm3", "#/cm³", "number concentration 0.3–4.0 µm (SPS30)", False),
    Quantity("nc10_cm3", "#/cm³", "number concentration 0.3–10 µm (SPS30)", False),
    Quantity("typical_size_um", "µm", "typical particle size (SPS30)", False),
)

QUANTITIES: dict[str, Quantity] = {q.name: q for q in _ALL}
COLUMN_QUANTITIES: tuple[str, ...] = tuple(q.name for q in _ALL if q.column)

FLAGS_VERSION = 1


class ReadingFlag(IntFlag):
    """Bit flags stored in ``readings.flags`` (registry version :data:`FLAGS_VERSION`).

    Bits are never reused: a retired flag keeps its bit. Edge-raised flags travel in the payload
    by name; the collector maps them with ``ReadingFlag[name.upper()]``.
    """

    WARMING_UP = 1 << 0  # all-zero frames / sensor still spinning up
    OUT_OF_SPEC = 1 << 1  # value beyond the sensor's rated range (e.g. SDS011 > 999.9)
    INCONSISTENT = 1 << 2  # framing valid but values contradict each other
    PARTIAL_WINDOW = 1 << 3  # fewer samples in the averaging window than expected
    CLOCK_SUSPECT = 1 << 4  # device time far from the collector's
