"""Limit-value profiles and index classes, loaded from the packaged data files.

``data/limits.json`` is a verbatim copy of ``shared/limits/limits.json`` (numbers, units and
per-value source citations); ``data/profiles.json`` says which of its regimes are exceedance
profiles and adds their validity rules, each with its source. No limit number lives in code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from luftnett.errors import ConfigError

__all__ = [
    "INDICATIVE_NOTE_NO",
    "IndexClass",
    "LimitEntry",
    "Profile",
    "ProfileSet",
    "Validity",
    "load_profiles",
]


@dataclass(frozen=True, slots=True)
class Validity:
    hour_min_coverage_pct: float
    day_min_valid_hours: int
    year_min_coverage_pct: float
    source: str


@dataclass(frozen=True, slots=True)
class LimitEntry:
    pollutant: str  # "PM2.5", "PM10", "NO2"
    averaging_period: str  # "1h", "24h", "1y"
    value_ugm3: float
    allowed_exceedances_per_year: int | None
    allowed_source: str | None  # set when the allowance is derived (profiles.json)
    kind: str
    level: str | None  # WHO: "AQG", "IT-1", ...
    statistic: str
    effective_date: str | None
    consecutive_periods: int | None
    source_url: str
    verified: bool
    note: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pollutant": self.pollutant,
            "averaging_period": self.averaging_period,
            "value_ugm3": self.value_ugm3,
            "allowed_exceedances_per_year": self.allowed_exceedances_per_year,
            "allowed_source": self.allowed_source,
            "kind": self.kind,
            "level": self.level,
            "statistic": self.statistic,
            "effective_date": self.effective_date,
            "consecutive_periods": self.consecutive_periods,
            "source_url": self.source_url,
            "verified": self.verified,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Profile:
    id: str
    title: str
    name: str
    status: str
    source_url: str
    validity: Validity
    entries: tuple[LimitEntry, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "name": self.name,
            "status": self.status,
            "source_url": self.source_url,
            "validity": {
                "hour_min_coverage_pct": self.validity.hour_min_coverage_pct,
                "day_min_valid_hours": self.validity.day_min_valid_hours,
                "year_min_coverage_pct": self.validity.year_min_coverage_pct,
                "source": self.validity.source,
            },
        }


@dataclass(frozen=True, slots=True)
class IndexClass:
    pollutant: str
    cls: int
    lower_ugm3: float
    upper_ugm3: float | None
    label_no: str
    label_en: str
    color: str
    advice_no: str
    advice_en: str
    verified: bool


#: the indicative-measurements note in bokmål (limits.json has the English one)
INDICATIVE_NOTE_NO = (
    "Målingene er indikative (mikrosensorer), ikke grunnlag for å vurdere om grenseverdiene "
    "er overholdt."
)


@dataclass(frozen=True, slots=True)
class ProfileSet:
    profiles: dict[str, Profile]
    index_classes: tuple[IndexClass, ...]
    index_source_url: str
    index_note: str
    quantity_of: dict[str, str]  # "PM10" -> "pm10_ugm3"
    factor_to_ugm3: dict[str, float]  # "no2_ppb" -> 1.9125; quantities absent: 1
    indicative_label: str
    indicative_note: str
    limits_version: str
    limits_retrieved: str

    def get(self, profile_id: str) -> Profile:
        try:
            return self.profiles[profile_id]
        except KeyError:
            known = ", ".join(sorted(self.profiles))
            raise ConfigError(f"unknown profile {profile_id!r}; use one of: {known}") from None

    def classify(self, pollutant: str, value_ugm3: float) -> IndexClass | None:
        """The index class of a 1-h value (lower <= x < upper)."""
        for c in self.index_classes:
            below_upper = c.upper_ugm3 is None or value_ugm3 < c.upper_ugm3
            if c.pollutant == pollutant and value_ugm3 >= c.lower_ugm3 and below_upper:
                return c
        return None


def _read(name: str) -> dict[str, Any]:
    text = resources.files("luftnett.api").joinpath("data", name).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def load_profiles() -> ProfileSet:
    """Parse the packaged data files once."""
    spec = _read("profiles.json")
    limits = _read(spec["limits_file"])
    regimes = {r["id"]: r for r in limits["regimes"]}
    kinds = set(spec["exceedance_kinds"])
    profiles: dict[str, Profile] = {}
    for p in spec["profiles"]:
        reg = regimes[p["regime"]]
        overrides = {o["averaging_period"]: o for o in p.get("allowed_exceedances_override", [])}
        entries = []
        for e in reg["entries"]:
            if e["kind"] not in kinds or e["unit"] != "µg/m³":
                continue
            allowed = e["allowed_exceedances_per_year"]
            allowed_source = None
            o = overrides.get(e["averaging_period"])
            if allowed is None and o is not None and e["kind"] != "alert threshold":
                allowed, allowed_source = o["allowed_exceedances_per_year"], o["source"]
            entries.append(
                LimitEntry(
                    pollutant=e["pollutant"],
                    averaging_period=e["averaging_period"],
                    value_ugm3=float(e["value"]),
                    allowed_exceedances_per_year=allowed,
                    allowed_source=allowed_source,
                    kind=e["kind"],
                    level=e.get("level"),
                    statistic=e.get("statistic", ""),
                    effective_date=e.get("effective_date"),
                    consecutive_periods=e.get("consecutive_periods"),
                    source_url=e["source_url"],
                    verified=bool(e.get("verified")),
                    note=e.get("note"),
                )
            )
        v = p["validity"]
        profiles[p["id"]] = Profile(
            id=p["id"],
            title=p["title"],
            name=reg["name"],
            status=reg.get("status", ""),
            source_url=reg["source_url"],
            validity=Validity(
                hour_min_coverage_pct=float(v["hour_min_coverage_pct"]),
                day_min_valid_hours=int(v["day_min_valid_hours"]),
                year_min_coverage_pct=float(v["year_min_coverage_pct"]),
                source=v["source"],
            ),
            entries=tuple(entries),
        )
    idx = regimes[spec["index"]["regime"]]
    classes = tuple(
        IndexClass(
            pollutant=e["pollutant"],
            cls=int(e["class"]),
            lower_ugm3=float(e["value"]),
            upper_ugm3=None if e.get("upper") is None else float(e["upper"]),
            label_no=e["label_no"],
            label_en=e["label_en"],
            color=e["color"],
            advice_no=e["advice_no"],
            advice_en=e["advice_en"],
            verified=bool(e.get("verified")),
        )
        for e in idx["entries"]
    )
    conversions = limits["conversions"]
    factor: dict[str, float] = {}
    quantity_of: dict[str, str] = {}
    for pollutant, q in spec["quantities"].items():
        quantity_of[pollutant] = q["column"]
        if q["conversion"]:
            group, key = q["conversion"].split(".")
            factor[q["column"]] = float(conversions[group][key])
    return ProfileSet(
        profiles=profiles,
        index_classes=classes,
        index_source_url=idx["source_url"],
        index_note=spec["index"]["note"],
        quantity_of=quantity_of,
        factor_to_ugm3=factor,
        indicative_label=spec["indicative_label"],
        indicative_note=spec["indicative_note"],
        limits_version=limits["version"],
        limits_retrieved=limits["retrieved"],
    )
