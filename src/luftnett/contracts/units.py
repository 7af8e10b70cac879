"""Pollutants and other measured quantities, their units, and the reading flag registry.

The quantity name carries its unit (``pm25_ugm3``); this registry is the one place that says
which names exist, what they mean and whether the database keeps them in a column of their own
(the rest travel in ``readings.extra``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag

__all__ = [
    "COLLECTOR_FLAGS",
    "COLUMN_QUANTITIES",
    "EDGE_FLAGS",
    "FLAGS_VERSION",
    "INVALIDATING_FLAGS",
    "MAIN_SENSOR_RANKS",
    "MODEL_QUANTITIES",
    "POLLUTANTS",
    "QUANTITIES",
    "QUERY_TIME_FLAGS",
    "Quantity",
    "ReadingFlag",
    "main_sensor_rank",
]


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

_PLANTOWER = (
    "pm1_cf1",
    "pm25_cf1",
    "pm10_cf1",
    "pm1_ugm3",
    "pm25_ugm3",
    "pm10_ugm3",
    "nc03_per_01l",
    "nc05_per_01l",
    "nc10_per_01l",
    "nc25_per_01l",
    "nc50_per_01l",
    "nc100_per_01l",
)

#: sensor model (the edge driver's name, ``readings.sensor_model``) -> the quantities its
#: driver reports, in the order of the sensor's frame (the PMS and SPS30 drivers decode their
#: words in this order); the SensorThings facade offers a device the Datastreams of these (a
#: model not listed here gets every column quantity). tests/unit/test_contracts.py checks it
#: against what the drivers decode.
MODEL_QUANTITIES: dict[str, tuple[str, ...]] = {
    "sds011": ("pm25_ugm3", "pm10_ugm3"),
    **dict.fromkeys(("pms5003", "pms7003"), _PLANTOWER),
    "sps30": (
        "pm1_ugm3",
        "pm25_ugm3",
        "pm4_ugm3",
        "pm10_ugm3",
        "nc05_cm3",
        "nc1_cm3",
        "nc25_cm3",
        "nc4_cm3",
        "nc10_cm3",
        "typical_size_um",
    ),
    "dgs-no2": ("no2_ppb", "temperature_c", "rh_pct"),
    "sht31": ("temperature_c", "rh_pct"),
}

#: the quantities measured for their own sake (limit values apply to them); temperature, RH
#: and the particle counts accompany them
POLLUTANTS: frozenset[str] = frozenset({"pm1_ugm3", "pm25_ugm3", "pm10_ugm3", "no2_ppb"})
#: per known model, :func:`main_sensor_rank` (computed once: it is asked per message)
_RANKS: dict[str, int] = {
    m: 2 if not (POLLUTANTS - {"no2_ppb"}).isdisjoint(qs) else 1 if "no2_ppb" in qs else 0
    for m, qs in MODEL_QUANTITIES.items()
}


def main_sensor_rank(model: str) -> int:
    """Which of a box's sensors names the device (``devices.sensor_model``, a label: the
    registry, the API and SensorThings show it): a PM sensor (2) before the NO2 module (1)
    before a temperature/RH companion, which measures no pollutant (0); a model not in
    :data:`MODEL_QUANTITIES` ranks as a PM sensor. A message's sensor takes the name when it
    ranks at least as high as the device's: a PMS5003 replacing an SDS011 does, the NO2
    module beside it does not."""
    return _RANKS.get(model, 2)


#: the models of rank 0 and 1 (:func:`main_sensor_rank`), for SQL
MAIN_SENSOR_RANKS: dict[int, tuple[str, ...]] = {
    r: tuple(sorted(m for m, k in _RANKS.items() if k == r)) for r in (0, 1)
}

# 1: bits 0-4; 2: adds bits 5-10 (collector quality control, annotations); 3: the same bits,
# ``stuck`` looks at the pollutants only (PM and NO2: not temperature or RH); 4: the same
# bits, a PM value of zero is part of a ``stuck`` run only when the reading's other PM
# values are zero too (collector/qc.py ZERO_TOGETHER)
FLAGS_VERSION = 4


class ReadingFlag(IntFlag):
    """Bit flags stored in ``readings.flags`` (registry version :data:`FLAGS_VERSION`).

    Bits are never reused: a retired flag keeps its bit. Edge-raised flags travel in the payload
    by name; the collector maps them with ``ReadingFlag[name.upper()]``. ``readings.qc_checks``
    holds the same bits for "this check ran"; ``flags`` for "this check fired". See
    docs/quality.md.
    """

    WARMING_UP = 1 << 0  # edge: all-zero frames / sensor still spinning up
    OUT_OF_SPEC = 1 << 1  # edge: value beyond the sensor's rated range (e.g. SDS011 > 999.9)
    INCONSISTENT = 1 << 2  # edge: framing valid but values contradict each other
    PARTIAL_WINDOW = 1 << 3  # edge: fewer samples in the averaging window than expected
    CLOCK_SUSPECT = 1 << 4  # edge (clock not synced) or collector (device time far from its own)
    OUT_OF_RANGE = 1 << 5  # collector: a value outside the plausible range of its quantity
    STUCK = 1 << 6  # collector: a PM or NO2 value repeated unchanged over many readings
    SPIKE = 1 << 7  # collector: a value far from the median of its neighbours
    HIGH_HUMIDITY = 1 << 8  # collector: RH >= 85 %, fog risk for optical PM
    SENSOR_ERROR = 1 << 9  # edge: the sensor reported a fault of its own (status/error bits)
    ANNOTATED_INVALID = 1 << 10  # query time only: inside an invalidating staff annotation


#: raised by the edge agent (the sensor's own error bits, the averager's and the clock's verdicts)
EDGE_FLAGS = (
    ReadingFlag.WARMING_UP
    | ReadingFlag.OUT_OF_SPEC
    | ReadingFlag.INCONSISTENT
    | ReadingFlag.PARTIAL_WINDOW
    | ReadingFlag.CLOCK_SUSPECT
    | ReadingFlag.SENSOR_ERROR
)
#: raised by collector quality control when the reading is stored
COLLECTOR_FLAGS = (
    ReadingFlag.CLOCK_SUSPECT
    | ReadingFlag.OUT_OF_RANGE
    | ReadingFlag.STUCK
    | ReadingFlag.SPIKE
    | ReadingFlag.HIGH_HUMIDITY
)
#: never stored: computed when the data are read (``readings_effective.effective_flags``)
QUERY_TIME_FLAGS = ReadingFlag.ANNOTATED_INVALID
#: a reading carrying any of these is left out of means, minima, maxima and valid counts
INVALIDATING_FLAGS = (
    ReadingFlag.WARMING_UP
    | ReadingFlag.OUT_OF_SPEC
    | ReadingFlag.INCONSISTENT
    | ReadingFlag.SENSOR_ERROR
    | ReadingFlag.CLOCK_SUSPECT
    | ReadingFlag.OUT_OF_RANGE
    | ReadingFlag.STUCK
    | ReadingFlag.ANNOTATED_INVALID
)
