"""The Norwegian air-quality index of the latest hour, and the most exposed sites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from luftnett.api.deps import Conn, Profiles, ReadAccess
from luftnett.api.profiles import INDICATIVE_NOTE_NO, IndexClass, ProfileSet
from luftnett.api.quality import INVALID_MASK

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["index"], dependencies=[ReadAccess])

_LATEST = """
SELECT d.device_id, d.sensor_model, s.site_id, s.name AS site_name, s.site_type, s.lat, s.lon,
       l.hour_start, l.last_ts, h.*
FROM devices d
LEFT JOIN deployments dep ON dep.device_id = d.device_id AND dep.valid_to IS NULL
LEFT JOIN sites s ON s.site_id = dep.site_id
LEFT JOIN LATERAL (
    SELECT date_trunc('hour', r.ts, 'UTC') AS hour_start, r.ts AS last_ts FROM readings r
    WHERE r.device_id = d.device_id ORDER BY r.ts DESC LIMIT 1
) l ON true
LEFT JOIN LATERAL (
    -- readings_effective: stored flags plus staff annotations (ANNOTATED_INVALID)
    SELECT count(*)::int AS n_stored,
           count(*) FILTER (WHERE r.effective_flags & %(mask)s = 0)::int AS n_valid,
           greatest(1, round(3600 / min(r.window_s)::numeric))::int AS n_expected,
           avg(r.pm25_ugm3) FILTER (WHERE r.effective_flags & %(mask)s = 0) AS pm25_ugm3,
           avg(r.pm10_ugm3) FILTER (WHERE r.effective_flags & %(mask)s = 0) AS pm10_ugm3,
           avg(r.no2_ppb) FILTER (WHERE r.effective_flags & %(mask)s = 0) AS no2_ppb,
           count(r.pm25_ugm3) FILTER (WHERE r.effective_flags & %(mask)s = 0)::int AS pm25_ugm3_n,
           count(r.pm10_ugm3) FILTER (WHERE r.effective_flags & %(mask)s = 0)::int AS pm10_ugm3_n,
           count(r.no2_ppb) FILTER (WHERE r.effective_flags & %(mask)s = 0)::int AS no2_ppb_n
    FROM readings_effective r
    WHERE r.device_id = d.device_id AND r.ts >= l.hour_start
      AND r.ts < l.hour_start + interval '1 hour'
) h ON true
ORDER BY d.device_id
"""

_EXPOSURE = """
WITH h AS (
    SELECT dep.site_id, r.device_id, date_trunc('hour', r.ts, 'UTC') AS hour_start,
           avg({q}) FILTER (WHERE r.effective_flags & %(mask)s = 0) AS mean,
           count({q}) FILTER (WHERE r.effective_flags & %(mask)s = 0) AS n_valid,
           greatest(1, round(3600 / min(r.window_s)::numeric)) AS n_expected
    FROM readings_effective r
    JOIN deployments dep ON dep.device_id = r.device_id AND r.ts >= dep.valid_from
         AND (dep.valid_to IS NULL OR r.ts < dep.valid_to)
    WHERE r.ts >= %(start)s AND r.ts < %(end)s
    GROUP BY 1, 2, 3
), d AS (
    SELECT site_id, (hour_start AT TIME ZONE 'Europe/Oslo')::date AS day, avg(mean) AS mean,
           count(*) FILTER (WHERE n_valid * 4 >= n_expected * 3) AS hours_valid
    FROM h WHERE mean IS NOT NULL GROUP BY 1, 2
)
SELECT s.site_id, s.name, s.site_type, s.lat, s.lon,
       (SELECT avg(mean) FROM h WHERE h.site_id = s.site_id AND mean IS NOT NULL) AS mean,
       (SELECT count(*) FROM h WHERE h.site_id = s.site_id AND mean IS NOT NULL) AS hours_with_data,
       (SELECT count(*) FROM d WHERE d.site_id = s.site_id AND hours_valid >= 18) AS days_valid,
       (SELECT count(*) FROM d WHERE d.site_id = s.site_id AND hours_valid >= 18
            AND mean > %(day_value)s) AS days_above
FROM sites s
ORDER BY 6 DESC NULLS LAST, s.site_id
"""


#: below this share of the period's hours with data a site's mean is said not to stand for it
_COVERED_PCT = 75.0
#: site types in bokmål for the texts (others as stored)
_SITE_TYPES_NO = {
    "traffic": "trafikk",
    "background": "bakgrunn",
    "urban": "by",
    "suburban": "forstad",
    "rural": "landlig",
    "industrial": "industri",
    "residential": "boligområde",
    "school": "skole",
    "kindergarten": "barnehage",
    "hospital": "sykehus",
    "nursing-home": "sykehjem",
}


def _class_out(c: IndexClass | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "class": c.cls,
        "label_no": c.label_no,
        "label_en": c.label_en,
        "color": c.color,
        "advice_no": c.advice_no,
        "advice_en": c.advice_en,
        "bounds_verified": c.verified,
    }


def _index(
    profiles: ProfileSet, values: dict[str, float | None], coverage: dict[str, float | None]
) -> dict[str, Any]:
    per: dict[str, Any] = {}
    worst: IndexClass | None = None
    for pollutant, q in profiles.quantity_of.items():
        v = values.get(q)
        if v is None:
            continue
        ugm3 = v * profiles.factor_to_ugm3.get(q, 1.0)
        c = profiles.classify(pollutant, ugm3)
        per[pollutant] = {
            "value_ugm3": round(ugm3, 1),
            "coverage_pct": coverage.get(q),
            "index": _class_out(c),
        }
        if c is not None and (worst is None or c.cls > worst.cls):
            worst = c
    return {"overall": _class_out(worst), "pollutants": per}


@router.get(
    "/index/latest",
    summary="Air-quality index of the latest hour",
    description="Per device (and its site): the Norwegian index class (Lite / Moderat / Høy / "
    "Svært høy) of the latest UTC clock hour with data, per pollutant and overall (the worst), "
    "with colour and health advice in Norwegian and English. The hour may be incomplete: each "
    "pollutant's coverage is given (valid readings of it / readings expected), and "
    "`coverage_pct` is the best-covered pollutant's (a box with a PM sensor and an SHT31 "
    "stores two readings a window; the hour's coverage is its sensors', not their sum). Index "
    "classes are public information, not compliance.",
)
async def latest_index(conn: Conn, profiles: Profiles) -> dict[str, Any]:
    cur = await conn.execute(_LATEST, {"mask": INVALID_MASK})
    now = datetime.now(UTC)
    out = []
    for r in await cur.fetchall():
        hour = r["hour_start"]
        values = {q: r[q] for q in ("pm25_ugm3", "pm10_ugm3", "no2_ppb")}
        coverage = {
            q: round(100.0 * r[f"{q}_n"] / r["n_expected"], 1)
            if r["n_expected"] and r[f"{q}_n"]
            else None
            for q in values
        }
        covered = [c for c in coverage.values() if c is not None]
        item: dict[str, Any] = {
            "device_id": r["device_id"],
            "site": None
            if r["site_id"] is None
            else {
                "site_id": r["site_id"],
                "name": r["site_name"],
                "site_type": r["site_type"],
                "lat": r["lat"],
                "lon": r["lon"],
            },
            "hour_start": None if hour is None else hour.isoformat(),
            "stale": hour is None or now - hour > timedelta(hours=3),
            "coverage_pct": max(covered) if covered else (0.0 if r["n_expected"] else None),
            "values": {k: None if v is None else round(v, 2) for k, v in values.items()},
            **_index(profiles, values, coverage),
        }
        out.append(item)
    return {
        "source_url": profiles.index_source_url,
        "note": profiles.index_note,
        "classes": [
            {
                "pollutant": c.pollutant,
                "class": c.cls,
                "lower_ugm3": c.lower_ugm3,
                "upper_ugm3": c.upper_ugm3,
                "label_no": c.label_no,
                "label_en": c.label_en,
                "color": c.color,
            }
            for c in profiles.index_classes
        ],
        "devices": out,
    }


_NAMES = {
    "pm25_ugm3": ("svevestøv (PM2,5)", "fine particles (PM2.5)", "PM2.5"),
    "pm10_ugm3": ("svevestøv (PM10)", "particles (PM10)", "PM10"),
    "no2_ppb": ("nitrogendioksid (NO₂)", "nitrogen dioxide (NO₂)", "NO2"),
}


def _fmt_no(x: float) -> str:
    return f"{x:.1f}".replace(".", ",")


@router.get(
    "/exposure",
    summary="Most exposed sites, in plain language",
    description="Sites ranked by the mean of valid hourly means over the last `days` days, "
    "with the number of valid Europe/Oslo days above the WHO 2021 24-h guideline and a "
    "sentence in Norwegian (bokmål) and English for each. Indicative microsensor data.",
)
async def exposure(
    conn: Conn,
    profiles: Profiles,
    quantity: Annotated[str, Query(pattern="^(pm25_ugm3|pm10_ugm3|no2_ppb)$")] = "pm25_ugm3",
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> dict[str, Any]:
    from psycopg import sql

    pollutant = _NAMES[quantity][2]
    factor = profiles.factor_to_ugm3.get(quantity, 1.0)
    who = profiles.get("who-2021")
    guide = next(
        (
            e
            for e in who.entries
            if e.pollutant == pollutant and e.averaging_period == "24h" and e.level == "AQG"
        ),
        None,
    )
    end = datetime.now(UTC)
    start = end - timedelta(days=days)
    day_value = (guide.value_ugm3 / factor) if guide else float("inf")
    query = sql.SQL(_EXPOSURE).format(q=sql.SQL("r.{}").format(sql.Identifier(quantity)))
    cur = await conn.execute(
        query, {"mask": INVALID_MASK, "start": start, "end": end, "day_value": day_value}
    )
    name_no, name_en, _ = _NAMES[quantity]
    ranked = []
    for rank, r in enumerate(await cur.fetchall(), start=1):
        mean = None if r["mean"] is None else float(r["mean"]) * factor
        hours = int(r["hours_with_data"])
        pct = 100.0 * hours / (24 * days)  # the mean stands on this share of the period
        if mean is None:
            text_no = f"{r['name']}: ingen gyldige målinger av {name_no} de siste {days} dagene."
            text_en = f"{r['name']}: no valid {name_en} measurements in the last {days} days."
        else:
            g = guide.value_ugm3 if guide else None
            kind_no = _SITE_TYPES_NO.get(r["site_type"] or "", r["site_type"])
            # the mean is of the hours with data: say how many, and when they are too few to
            # stand for the period (a new site, a long outage)
            thin_no = thin_en = ""
            if pct < _COVERED_PCT:
                thin_no = " For lite data til å stå for hele perioden."
                thin_en = " Too little data to stand for the whole period."
            text_no = (
                f"{r['name']} ({kind_no}): gjennomsnitt {_fmt_no(mean)} µg/m³ {name_no} fra "
                f"{hours} timer med målinger ({_fmt_no(pct)} % av de siste {days} dagene); "
                f"{r['days_above']} av {r['days_valid']} hele dager over WHOs døgnanbefaling "
                f"({_fmt_no(g) if g else '–'} µg/m³).{thin_no}"
            )
            text_en = (
                f"{r['name']} ({r['site_type']}): mean {mean:.1f} µg/m³ of {name_en} from "
                f"{hours} hours with data ({pct:.1f} % of the last {days} days); "
                f"{r['days_above']} of {r['days_valid']} complete days above the WHO 24-hour "
                f"guideline ({g if g else '–'} µg/m³).{thin_en}"
            )
        ranked.append(
            {
                "rank": rank,
                "site_id": r["site_id"],
                "name": r["name"],
                "site_type": r["site_type"],
                "lat": r["lat"],
                "lon": r["lon"],
                "mean_ugm3": None if mean is None else round(mean, 2),
                "hours_with_data": r["hours_with_data"],
                "coverage_pct": round(pct, 1),
                "days_valid": r["days_valid"],
                "days_above_who_24h": r["days_above"],
                "text_no": text_no,
                "text_en": text_en,
            }
        )
    return {
        "quantity": quantity,
        "days": days,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "who_24h_guideline_ugm3": guide.value_ugm3 if guide else None,
        "who_source_url": guide.source_url if guide else None,
        "indicative_note_no": INDICATIVE_NOTE_NO,
        "indicative_note_en": profiles.indicative_note,
        "sites": ranked,
    }
