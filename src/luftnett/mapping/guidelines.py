"""Which reference values a map is compared with, read from the packaged ``data/limits.json``.

``data/limits.json`` is a verbatim copy of the project's shared ``limits/limits.json`` (values,
units and a source per value); no limit number lives in code. A map of a period mean is
compared with the Norwegian limit values (forurensningsforskriften kapittel 7) and the
Norwegian air-quality criteria (luftkvalitetskriterier, FHI and Miljødirektoratet, which
follow the WHO 2021 guidelines) for the same averaging period. Microsensor data are at best
indicative: a map says where a value is probably above a reference value, never that a
limit is legally exceeded.

NO2 is stored in ppb; its reference values (µg/m³) are converted with the file's factor
(293.15 K, 101.325 kPa).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from luftnett.mapping.errors import MappingError

__all__ = ["POLLUTANT_INFO", "Guideline", "PollutantInfo", "guidelines_for"]

PeriodKind = Literal["hourly", "daily", "annual"]
_AVERAGING = {"hourly": "1h", "daily": "24h", "annual": "1y"}
_REGIMES = ("no-forurensningsforskriften-ch7", "no-luftkvalitetskriterier")


@dataclass(frozen=True, slots=True)
class PollutantInfo:
    """A pollutant as maps know it: ``readings`` column, unit, name in limits.json."""

    key: str
    column: str
    unit: str
    limits_name: str
    label: str


POLLUTANT_INFO: dict[str, PollutantInfo] = {
    "pm25": PollutantInfo("pm25", "pm25_ugm3", "µg/m³", "PM2.5", "PM2.5"),
    "pm10": PollutantInfo("pm10", "pm10_ugm3", "µg/m³", "PM10", "PM10"),
    "no2": PollutantInfo("no2", "no2_ppb", "ppb", "NO2", "NO2"),
}


@dataclass(frozen=True, slots=True)
class Guideline:
    """A reference value in the map's unit, with where it comes from."""

    regime: str
    name_no: str
    name_en: str
    kind: str  # "limit value", "assessment criterion"
    averaging_period: str  # "1h", "24h", "1y"
    value: float  # in the pollutant's map unit (ppb for NO2)
    value_ugm3: float
    allowed_per_year: int | None
    source_url: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "regime": self.regime,
            "name_no": self.name_no,
            "name_en": self.name_en,
            "kind": self.kind,
            "averaging_period": self.averaging_period,
            "value": self.value,
            "value_ugm3": self.value_ugm3,
            "allowed_per_year": self.allowed_per_year,
            "source_url": self.source_url,
        }


_NAMES = {
    "no-forurensningsforskriften-ch7": (
        "grenseverdi (forurensningsforskriften)",
        "limit value (Norwegian Pollution Regulations)",
    ),
    "no-luftkvalitetskriterier": (
        "luftkvalitetskriterium (FHI/Miljødirektoratet)",
        "air-quality criterion",
    ),
}


@cache
def _limits() -> dict[str, Any]:
    text = resources.files("luftnett.mapping").joinpath("data", "limits.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def ppb_per_ugm3(pollutant: str) -> float:
    """Map units per µg/m³: 1 for PM, ppb per µg/m³ for NO2."""
    if pollutant != "no2":
        return 1.0
    return 1.0 / float(_limits()["conversions"]["NO2"]["ppb_to_ugm3"])


def guidelines_for(pollutant: str, period: PeriodKind) -> list[Guideline]:
    """Norwegian limit values and air-quality criteria for ``pollutant`` and ``period``, in the
    order of :data:`_REGIMES` (binding first); empty when none applies (e.g. hourly PM)."""
    if pollutant not in POLLUTANT_INFO:
        raise MappingError(f"unknown pollutant {pollutant!r}; use one of pm25, pm10, no2")
    info = POLLUTANT_INFO[pollutant]
    factor = ppb_per_ugm3(pollutant)
    regimes = {r["id"]: r for r in _limits()["regimes"]}
    out = []
    for rid in _REGIMES:
        for e in regimes[rid]["entries"]:
            if (
                e["pollutant"] == info.limits_name
                and e["averaging_period"] == _AVERAGING[period]
                and e["unit"] == "µg/m³"
                and e["kind"] in ("limit value", "assessment criterion")
            ):
                out.append(
                    Guideline(
                        regime=rid,
                        name_no=_NAMES[rid][0],
                        name_en=_NAMES[rid][1],
                        kind=e["kind"],
                        averaging_period=e["averaging_period"],
                        value=float(e["value"]) * factor,
                        value_ugm3=float(e["value"]),
                        allowed_per_year=e.get("allowed_exceedances_per_year"),
                        source_url=e["source_url"],
                    )
                )
    return out
