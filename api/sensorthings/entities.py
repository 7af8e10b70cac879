"""The SensorThings entity sets as SQL over luftnett's tables, and their stable ids.

Each entity set is a SELECT (its *base*) whose columns the filter, order and render steps name;
PostgreSQL flattens the base into the outer query, so a ``$filter`` on ``phenomenonTime``
reaches the ``readings (device_id, ts)`` index. Ids are derived from the data, so links stay
valid across requests:

==================  ==========================================  =============================
entity              from                                        ``@iot.id``
==================  ==========================================  =============================
Thing               ``devices``                                 device id: ``'sds-001'``
Location            ``sites`` (a Thing's is its open deployment) site id: ``'skole-1'``
HistoricalLocation  ``deployments``                             deployment id: ``12``
Sensor              sensor models of ``devices``                model: ``'sds011'``
ObservedProperty    the column quantities                       quantity: ``'pm25_ugm3'``
Datastream          device x quantity x raw|calibrated          ``'sds-001:pm25_ugm3:raw'``
Observation         ``readings`` (+ ``calibrated_current``)     Datastream id, time, seq:
                                                                ``'sds-001:pm25_ugm3:raw:20260101T000100Z:4711'``
FeatureOfInterest   ``sites`` (the deployment at the reading)   site id: ``'skole-1'``
==================  ==========================================  =============================

Calibrated Datastreams exist for the quantities of :data:`luftnett.api.calibration.CALIBRATED`;
their Observations are the values of the calibration version in force at each reading's time.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import sql

from luftnett.api.calibration import CALIBRATED
from luftnett.api.quality import INVALID_MASK, flag_names
from luftnett.contracts.units import QUANTITIES
from luftnett.db.schema import VALUE_COLUMNS

__all__ = [
    "ENTITIES",
    "KINDS",
    "OBSERVED_PROPERTIES",
    "Ctx",
    "EntityType",
    "Nav",
    "Params",
    "Prop",
    "Stream",
    "parse_datastream_id",
    "parse_observation_id",
    "streams",
]

Kind = Literal["str", "num", "int", "time", "bool", "json", "obj"]
KINDS = ("raw", "calibrated")


class Params:
    """Named query parameters collected while a statement is composed."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> sql.Placeholder:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return sql.Placeholder(name)


@dataclass(frozen=True, slots=True)
class Stream:
    """One Datastream of a device: a quantity, raw or calibrated."""

    quantity: str
    kind: str  # "raw" | "calibrated"

    @property
    def suffix(self) -> str:
        return f":{self.quantity}:{self.kind}"


def streams() -> list[Stream]:
    """Every Datastream kind a device has: each column quantity raw, calibrated where it can."""
    out = [Stream(q, "raw") for q in VALUE_COLUMNS]
    out += [Stream(q, "calibrated") for q in VALUE_COLUMNS if q in CALIBRATED]
    return out


_DEVICE = r"[a-z0-9-]{3,40}"
_DS_ID = re.compile(rf"^({_DEVICE}):([a-z0-9_]+):(raw|calibrated)$")
_OBS_ID = re.compile(
    rf"^({_DEVICE}):([a-z0-9_]+):(raw|calibrated):(\d{{8}}T\d{{6}}(?:\.\d{{6}})?)Z:(\d{{1,18}})$"
)
#: the reading's time in an Observation id: UTC, ISO 8601 basic format, microseconds if any
_TS_ID = (
    "concat(to_char(r.ts AT TIME ZONE 'UTC', 'YYYYMMDD\"T\"HH24MISS'), "
    "CASE WHEN mod(extract(microseconds FROM r.ts)::bigint, 1000000) <> 0 "
    "THEN to_char(r.ts AT TIME ZONE 'UTC', '.US') END, 'Z')"
)


def parse_datastream_id(value: object) -> tuple[str, Stream] | None:
    """(device, stream) of a Datastream id, or None when it cannot be one."""
    m = _DS_ID.match(value) if isinstance(value, str) else None
    if not m or Stream(m.group(2), m.group(3)) not in streams():
        return None
    return m.group(1), Stream(m.group(2), m.group(3))


def parse_observation_id(value: object) -> tuple[str, Stream, dt.datetime, int] | None:
    """(device, stream, time, seq) of an Observation id, or None when it cannot be one."""
    m = _OBS_ID.match(value) if isinstance(value, str) else None
    if not m or Stream(m.group(2), m.group(3)) not in streams():
        return None
    fmt = "%Y%m%dT%H%M%S.%f" if "." in m.group(4) else "%Y%m%dT%H%M%S"
    try:
        ts = dt.datetime.strptime(m.group(4), fmt).replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return m.group(1), Stream(m.group(2), m.group(3)), ts, int(m.group(5))


#: quantity -> (name, definition URI): EEA/INSPIRE pollutant vocabulary for the pollutants,
#: CF standard names for the meteorological quantities
OBSERVED_PROPERTIES: dict[str, tuple[str, str]] = {
    "pm1_ugm3": ("PM1", "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/6002"),
    "pm25_ugm3": ("PM2.5", "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/6001"),
    "pm10_ugm3": ("PM10", "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/5"),
    "no2_ppb": ("NO2", "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/8"),
    "temperature_c": ("Air temperature", "http://vocab.nerc.ac.uk/standard_name/air_temperature/"),
    "rh_pct": ("Relative humidity", "http://vocab.nerc.ac.uk/standard_name/relative_humidity/"),
}

#: unit symbol (luftnett.contracts.units) -> (name, QUDT definition)
_UNITS: dict[str, tuple[str, str]] = {
    "µg/m³": ("microgram per cubic metre", "http://qudt.org/vocab/unit/MicroGM-PER-M3"),
    "ppb": ("parts per billion", "http://qudt.org/vocab/unit/PPB"),
    "°C": ("degree Celsius", "http://qudt.org/vocab/unit/DEG_C"),
    "%": ("percent", "http://qudt.org/vocab/unit/PERCENT"),
}

#: sensor model (edge driver name) -> description; others get a generic one
_SENSORS: dict[str, str] = {
    "sds011": "Nova Fitness SDS011 laser particle sensor (PM2.5, PM10)",
    "pms5003": "Plantower PMS5003 laser particle sensor (PM1, PM2.5, PM10, counts)",
    "pms7003": "Plantower PMS7003 laser particle sensor (PM1, PM2.5, PM10, counts)",
    "sps30": "Sensirion SPS30 particulate matter sensor (PM1, PM2.5, PM4, PM10)",
    "dgs-no2": "SPEC Sensors DGS-NO2 electrochemical NO2 module (NO2, T, RH)",
    "sht31": "Sensirion SHT31 temperature and humidity sensor (serial forwarder)",
}

OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


@dataclass(frozen=True, slots=True)
class Prop:
    """A property that $filter, $orderby and $select may name: base column and type."""

    column: str
    kind: Kind
    expr: str | None = None  # SQL around the column, e.g. "({} & 1) = 0"


@dataclass(frozen=True, slots=True)
class Nav:
    """target rows where ``target.target_col = parent.parent_col``."""

    target: str  # entity set name
    many: bool
    target_col: str
    parent_col: str


@dataclass(frozen=True, slots=True)
class Ctx:
    """What a base query depends on: calibration tables present, narrowing of Observations."""

    cal_on: bool
    device: str | None = None
    stream: Stream | None = None
    site: str | None = None  # Observations of the devices ever deployed at this site
    seq: int | None = None
    ts: dt.datetime | None = None
    empty: bool = False  # an id that no Observation can have: no rows, no scan
    foi: bool = False  # compute each Observation's FeatureOfInterest (a subquery per row)


@dataclass(frozen=True)
class EntityType:
    name: str  # singular: Thing
    plural: str  # entity set: Things
    props: dict[str, Prop]
    navs: dict[str, Nav]
    base: Callable[[Ctx, Params], sql.Composable]
    render: Callable[[dict[str, Any]], dict[str, Any]]
    order: tuple[str, ...] = ("id",)  # default order and tie-breaker: base columns
    id_kind: Kind = "str"
    #: when set, a page selects these base columns only and ``complete`` adds the rest in
    #: Python (an Observation's id is cheaper to format here than in SQL)
    columns: tuple[str, ...] | None = None
    complete: Callable[[dict[str, Any]], None] | None = None


def _lit(v: Any) -> sql.Literal:
    return sql.Literal(v)


def _values(rows: list[tuple[Any, ...]], p: Params) -> sql.Composable:
    """A VALUES list of constants, as typed parameters (a '%' in a literal would be taken
    for a placeholder)."""
    return sql.SQL(", ").join(
        sql.SQL("({})").format(
            sql.SQL(", ").join(
                sql.SQL("{}::{}").format(p.add(v), sql.SQL("int" if isinstance(v, int) else "text"))
                for v in r
            )
        )
        for r in rows
    )


def _iso(v: Any) -> str | None:
    return None if v is None else v.isoformat().replace("+00:00", "Z")


@functools.cache
def _flag_names(bits: int) -> list[str]:
    return flag_names(bits)


# --- Things ------------------------------------------------------------------------------------

_THINGS = """
SELECT d.device_id AS id, d.device_id AS name,
       concat('luftnett air-quality microsensor ', d.device_id, ' (', d.sensor_model, ')')
           AS description,
       jsonb_build_object(
           'device_id', d.device_id, 'sensor_model', d.sensor_model,
           'sensor_serial', d.sensor_serial, 'agent_version', d.agent_version,
           'site', dep.site_id, 'site_name', s.name, 'site_type', s.site_type,
           'first_seen', d.first_seen, 'last_seen', d.last_seen,
           'calibration_status', {cal_status}, 'calibration_versions', {cal_versions},
           'label', 'indicative - microsensor') AS properties,
       dep.site_id AS location_id, d.sensor_model AS sensor_id
FROM devices d
LEFT JOIN LATERAL (SELECT dp.site_id FROM deployments dp
                   WHERE dp.device_id = d.device_id AND dp.valid_to IS NULL
                   ORDER BY dp.valid_from DESC LIMIT 1) dep ON true
LEFT JOIN sites s ON s.site_id = dep.site_id
"""

_CAL_VERSIONS = """(SELECT jsonb_object_agg(q.quantity, luftnett_active_version(d.device_id,
    q.pollutant, now())) FROM (VALUES {pairs}) AS q(quantity, pollutant))"""


def _things(ctx: Ctx, p: Params) -> sql.Composable:
    if ctx.cal_on:
        versions: sql.Composable = sql.SQL(_CAL_VERSIONS).format(
            pairs=_values(list(CALIBRATED.items()), p)
        )
        status: sql.Composable = sql.SQL(
            "CASE WHEN (SELECT count(*) FROM jsonb_each({v}) e WHERE e.value <> 'null') > 0 "
            "THEN 'calibrated' ELSE 'uncalibrated' END"
        ).format(v=versions)
    else:
        versions, status = sql.SQL("NULL::jsonb"), sql.SQL("'no calibration tables'")
    return sql.SQL(_THINGS).format(cal_status=status, cal_versions=versions)


def _render_thing(r: dict[str, Any]) -> dict[str, Any]:
    return {"name": r["name"], "description": r["description"], "properties": r["properties"]}


# --- Locations, FeaturesOfInterest, HistoricalLocations ---------------------------------------

_SITES = """
SELECT s.site_id AS id, s.name AS name,
       concat(s.name, ' (', s.site_type, ' site)') AS description,
       'application/geo+json' AS encoding_type,
       CASE WHEN s.lat IS NULL OR s.lon IS NULL THEN NULL
            ELSE jsonb_build_object('type', 'Point', 'coordinates', jsonb_build_array(s.lon, s.lat))
       END AS geometry,
       jsonb_build_object('site_id', s.site_id, 'site_type', s.site_type) AS properties
FROM sites s
"""


def _sites(ctx: Ctx, p: Params) -> sql.Composable:
    return sql.SQL(_SITES)


def _render_location(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": r["name"],
        "description": r["description"],
        "encodingType": r["encoding_type"],
        "location": r["geometry"],
        "properties": r["properties"],
    }


def _render_foi(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": r["name"],
        "description": r["description"],
        "encodingType": r["encoding_type"],
        "feature": r["geometry"],
        "properties": r["properties"],
    }


_HIST = """
SELECT dp.deployment_id AS id, dp.valid_from AS time, dp.valid_to AS valid_to,
       dp.device_id AS thing_id, dp.site_id AS location_id
FROM deployments dp
"""


def _hist(ctx: Ctx, p: Params) -> sql.Composable:
    return sql.SQL(_HIST)


def _render_hist(r: dict[str, Any]) -> dict[str, Any]:
    return {"time": r["time"]}


# --- Sensors, ObservedProperties ---------------------------------------------------------------

_SENSORS_SQL = """
SELECT m.sensor_model AS id, m.sensor_model AS name,
       coalesce(k.description, concat('sensor model ', m.sensor_model)) AS description,
       'text/plain' AS encoding_type,
       concat(coalesce(k.description, m.sensor_model),
              '; luftnett edge driver ', m.sensor_model, ', see docs/sensors.md') AS metadata
FROM (SELECT DISTINCT sensor_model FROM devices) m
LEFT JOIN (VALUES {known}) AS k(model, description) ON k.model = m.sensor_model
"""


def _sensors(ctx: Ctx, p: Params) -> sql.Composable:
    return sql.SQL(_SENSORS_SQL).format(known=_values(list(_SENSORS.items()), p))


def _render_sensor(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": r["name"],
        "description": r["description"],
        "encodingType": r["encoding_type"],
        "metadata": r["metadata"],
    }


def _observed_properties(ctx: Ctx, p: Params) -> sql.Composable:
    rows = [
        (q, name, uri, QUANTITIES[q].description) for q, (name, uri) in OBSERVED_PROPERTIES.items()
    ]
    return sql.SQL(
        "SELECT op.id, op.name, op.definition, op.description, "
        "jsonb_build_object('quantity', op.id) AS properties "
        "FROM (VALUES {rows}) AS op(id, name, definition, description)"
    ).format(rows=_values(rows, p))


def _render_op(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": r["name"],
        "definition": r["definition"],
        "description": r["description"],
        "properties": r["properties"],
    }


# --- Datastreams -------------------------------------------------------------------------------

_DATASTREAMS = """
SELECT concat(d.device_id, ':', st.quantity, ':', st.kind) AS id,
       concat(st.label, CASE WHEN st.kind = 'calibrated' THEN ' (calibrated)' ELSE ' (raw)' END,
              ' at ', d.device_id) AS name,
       concat(st.description, ', ', st.kind, ', measured by ', d.device_id) AS description,
       {om} AS observation_type,
       jsonb_build_object('name', st.unit_name, 'symbol', st.unit_symbol,
                          'definition', st.unit_definition) AS unit_of_measurement,
       jsonb_build_object('device_id', d.device_id, 'quantity', st.quantity, 'kind', st.kind,
                          'label', 'indicative - microsensor') AS properties,
       st.quantity AS op_id, st.kind AS kind, st.ord AS ord, d.device_id AS thing_id,
       d.sensor_model AS sensor_id,
       CASE WHEN st.kind = 'raw'
            THEN (SELECT min(r.ts) FROM readings r WHERE r.device_id = d.device_id) END AS t_first,
       CASE WHEN st.kind = 'raw'
            THEN (SELECT max(r.ts) FROM readings r WHERE r.device_id = d.device_id) END AS t_last
FROM devices d CROSS JOIN (VALUES {streams})
    AS st(quantity, kind, ord, label, description, unit_symbol, unit_name, unit_definition)
WHERE true {where}
"""


def _datastreams(ctx: Ctx, p: Params) -> sql.Composable:
    rows = []
    for i, s in enumerate(streams()):
        unit = QUANTITIES[s.quantity].unit
        uname, udef = _UNITS[unit]
        rows.append(
            (
                s.quantity,
                s.kind,
                i,
                OBSERVED_PROPERTIES[s.quantity][0],
                QUANTITIES[s.quantity].description,
                unit,
                uname,
                udef,
            )
        )
    where: list[sql.Composable] = []
    if ctx.device is not None:
        where.append(sql.SQL(" AND d.device_id = {}").format(p.add(ctx.device)))
    if ctx.stream is not None:
        where.append(
            sql.SQL(" AND st.quantity = {} AND st.kind = {}").format(
                p.add(ctx.stream.quantity), p.add(ctx.stream.kind)
            )
        )
    return sql.SQL(_DATASTREAMS).format(
        om=_lit(OM_MEASUREMENT), streams=_values(rows, p), where=sql.Composed(where)
    )


def _render_datastream(r: dict[str, Any]) -> dict[str, Any]:
    out = {
        "name": r["name"],
        "description": r["description"],
        "observationType": r["observation_type"],
        "unitOfMeasurement": r["unit_of_measurement"],
        "properties": r["properties"],
    }
    if r["t_first"] is not None:
        out["phenomenonTime"] = f"{_iso(r['t_first'])}/{_iso(r['t_last'])}"
        out["resultTime"] = out["phenomenonTime"]
    return out


# --- Observations ------------------------------------------------------------------------------

_OBS_ONE = """
SELECT concat(r.device_id, {suffix}, ':', {ts_id}, ':', r.seq) AS id,
       r.device_id, r.seq, {ord} AS ord, {quantity} AS quantity, {kind} AS kind,
       r.ts AS phenomenon_time, r.ts AS result_time, {value} AS result,
       r.effective_flags AS flags,
       {u} AS u, {version} AS version_id, r.window_s, r.n_samples, r.sensor_serial,
       r.received_at, concat(r.device_id, {suffix}) AS datastream_id, {foi} AS foi_id
FROM readings_effective r {join}
WHERE {value} IS NOT NULL {where}
"""

_OBS_ALL = """
SELECT concat(r.device_id, ':', x.quantity, ':', x.kind, ':', {ts_id}, ':', r.seq) AS id,
       r.device_id, r.seq, x.ord, x.quantity, x.kind, r.ts AS phenomenon_time,
       r.ts AS result_time, x.result,
       r.effective_flags AS flags,
       x.u, x.version_id, r.window_s, r.n_samples, r.sensor_serial, r.received_at,
       concat(r.device_id, ':', x.quantity, ':', x.kind) AS datastream_id, {foi} AS foi_id
FROM readings_effective r {joins}
CROSS JOIN LATERAL (VALUES {values}) AS x(quantity, kind, ord, result, u, version_id)
WHERE x.result IS NOT NULL {where}
"""

_FOI_OF = (
    "(SELECT dp.site_id FROM deployments dp WHERE dp.device_id = r.device_id "
    "AND dp.valid_from <= r.ts AND (dp.valid_to IS NULL OR r.ts < dp.valid_to) "
    "ORDER BY dp.valid_from DESC LIMIT 1)"
)


def _cal_join(q: str, alias: str) -> sql.Composable:
    return sql.SQL(
        " LEFT JOIN calibrated_current {c} ON {c}.device_id = r.device_id "
        "AND {c}.seq = r.seq AND {c}.pollutant = {p}"
    ).format(c=sql.Identifier(alias), p=_lit(CALIBRATED[q]))


def _obs_where(ctx: Ctx, p: Params) -> sql.Composable:
    parts: list[sql.Composable] = [sql.SQL(" AND false")] if ctx.empty else []
    if ctx.device is not None:
        parts.append(sql.SQL(" AND r.device_id = {}").format(p.add(ctx.device)))
    if ctx.seq is not None:
        parts.append(sql.SQL(" AND r.seq = {}").format(p.add(ctx.seq)))
    if ctx.ts is not None:
        parts.append(sql.SQL(" AND r.ts = {}").format(p.add(ctx.ts)))
    if ctx.site is not None:
        parts.append(
            sql.SQL(
                " AND r.device_id IN (SELECT dp.device_id FROM deployments dp "
                "WHERE dp.site_id = {})"
            ).format(p.add(ctx.site))
        )
    return sql.Composed(parts)


def _observations(ctx: Ctx, p: Params) -> sql.Composable:
    all_streams = streams()
    where = _obs_where(ctx, p)
    if ctx.stream is not None:
        s = ctx.stream
        if s.kind == "calibrated" and not ctx.cal_on:
            return sql.SQL(
                "SELECT NULL::text AS id, NULL::text AS device_id, NULL::bigint AS seq, "
                "0 AS ord, NULL::text AS quantity, NULL::text AS kind, "
                "NULL::timestamptz AS phenomenon_time, NULL::timestamptz AS result_time,"
                " NULL::float8 AS result, 0::bigint AS flags, NULL::float8 AS u, "
                "NULL::bigint AS version_id, NULL::real AS window_s, NULL::int AS n_samples, "
                "NULL::text AS sensor_serial, NULL::timestamptz AS received_at, "
                "NULL::text AS datastream_id, NULL::text AS foi_id WHERE false"
            )
        if s.kind == "raw":
            value: sql.Composable = sql.SQL("r.{}::float8").format(sql.Identifier(s.quantity))
            u: sql.Composable = sql.SQL("NULL::float8")
            version: sql.Composable = sql.SQL("NULL::bigint")
            join: sql.Composable = sql.SQL("")
        else:
            value = sql.SQL("c.value::float8")
            u, version = sql.SQL("c.u::float8"), sql.SQL("c.version_id")
            join = sql.SQL(
                " JOIN calibrated_current c ON c.device_id = r.device_id AND c.seq = r.seq "
                "AND c.pollutant = {}"
            ).format(_lit(CALIBRATED[s.quantity]))
        return sql.SQL(_OBS_ONE).format(
            quantity=_lit(s.quantity),
            kind=_lit(s.kind),
            ts_id=sql.SQL(_TS_ID),
            suffix=_lit(s.suffix),
            ord=_lit(all_streams.index(s)),
            value=value,
            mask=_lit(INVALID_MASK),
            u=u,
            version=version,
            foi=sql.SQL(_FOI_OF if ctx.foi else "NULL::text"),
            join=join,
            where=where,
        )
    joins: list[sql.Composable] = []
    values: list[sql.Composable] = []
    for i, s in enumerate(all_streams):
        if s.kind == "raw":
            values.append(
                sql.SQL("({q}, 'raw', {i}, r.{col}::float8, NULL::float8, NULL::bigint)").format(
                    q=_lit(s.quantity), i=_lit(i), col=sql.Identifier(s.quantity)
                )
            )
        elif ctx.cal_on:
            alias = f"cal_{s.quantity}"
            joins.append(_cal_join(s.quantity, alias))
            values.append(
                sql.SQL(
                    "({q}, 'calibrated', {i}, {a}.value::float8, {a}.u::float8, {a}.version_id)"
                ).format(q=_lit(s.quantity), i=_lit(i), a=sql.Identifier(alias))
            )
    return sql.SQL(_OBS_ALL).format(
        ts_id=sql.SQL(_TS_ID),
        mask=_lit(INVALID_MASK),
        foi=sql.SQL(_FOI_OF if ctx.foi else "NULL::text"),
        joins=sql.Composed(joins),
        values=sql.SQL(", ").join(values),
        where=where,
    )


_OBS_COLUMNS = (
    "device_id", "seq", "quantity", "kind", "phenomenon_time", "result", "flags", "u",
    "version_id", "window_s", "n_samples", "sensor_serial", "received_at", "foi_id",
)  # fmt: skip


def _complete_observation(r: dict[str, Any]) -> None:
    """``id`` and ``datastream_id`` as the base's SQL writes them."""
    ds = f"{r['device_id']}:{r['quantity']}:{r['kind']}"
    ts: dt.datetime = r["phenomenon_time"].astimezone(dt.UTC)
    stamp = ts.strftime("%Y%m%dT%H%M%S.%fZ" if ts.microsecond else "%Y%m%dT%H%M%SZ")
    r["datastream_id"] = ds
    r["id"] = f"{ds}:{stamp}:{r['seq']}"


def _render_observation(r: dict[str, Any]) -> dict[str, Any]:
    """Times stay datetimes: the response's JSON encoder (orjson) writes them as ISO 8601
    with Z, several times faster than isoformat()."""
    quality: dict[str, Any] = {
        "flags": r["flags"],
        "flag_names": list(_flag_names(r["flags"])),
        "valid": not r["flags"] & INVALID_MASK,
    }
    if r["version_id"] is not None:
        quality["uncertainty"] = r["u"]
        quality["calibration_version"] = r["version_id"]
    ts = r["phenomenon_time"]
    return {
        "phenomenonTime": ts,
        "resultTime": ts,
        "result": r["result"],
        "resultQuality": quality,
        "parameters": {
            "seq": r["seq"],
            "window_s": r["window_s"],
            "n_samples": r["n_samples"],
            "sensor_serial": r["sensor_serial"],
            "received_at": r["received_at"],
        },
    }


# --- the entity sets ---------------------------------------------------------------------------

_COMMON = {"id": Prop("id", "str"), "name": Prop("name", "str")}
_DESCRIBED = {**_COMMON, "description": Prop("description", "str")}

ENTITIES: dict[str, EntityType] = {
    e.plural: e
    for e in (
        EntityType(
            "Thing",
            "Things",
            {**_DESCRIBED, "properties": Prop("properties", "json")},
            {
                "Datastreams": Nav("Datastreams", True, "thing_id", "id"),
                "Locations": Nav("Locations", True, "id", "location_id"),
                "HistoricalLocations": Nav("HistoricalLocations", True, "thing_id", "id"),
            },
            _things,
            _render_thing,
        ),
        EntityType(
            "Location",
            "Locations",
            {
                **_DESCRIBED,
                "encodingType": Prop("encoding_type", "str"),
                "location": Prop("geometry", "json"),
                "properties": Prop("properties", "json"),
            },
            {
                "Things": Nav("Things", True, "location_id", "id"),
                "HistoricalLocations": Nav("HistoricalLocations", True, "location_id", "id"),
            },
            _sites,
            _render_location,
        ),
        EntityType(
            "HistoricalLocation",
            "HistoricalLocations",
            {"id": Prop("id", "int"), "time": Prop("time", "time")},
            {
                "Thing": Nav("Things", False, "id", "thing_id"),
                "Locations": Nav("Locations", True, "id", "location_id"),
            },
            _hist,
            _render_hist,
            id_kind="int",
        ),
        EntityType(
            "Sensor",
            "Sensors",
            {
                **_DESCRIBED,
                "encodingType": Prop("encoding_type", "str"),
                "metadata": Prop("metadata", "str"),
            },
            {"Datastreams": Nav("Datastreams", True, "sensor_id", "id")},
            _sensors,
            _render_sensor,
        ),
        EntityType(
            "ObservedProperty",
            "ObservedProperties",
            {
                **_DESCRIBED,
                "definition": Prop("definition", "str"),
                "properties": Prop("properties", "json"),
            },
            {"Datastreams": Nav("Datastreams", True, "op_id", "id")},
            _observed_properties,
            _render_op,
        ),
        EntityType(
            "Datastream",
            "Datastreams",
            {
                **_DESCRIBED,
                "observationType": Prop("observation_type", "str"),
                "unitOfMeasurement": Prop("unit_of_measurement", "json"),
                "properties": Prop("properties", "json"),
                "phenomenonTime": Prop("t_first", "time"),
                "resultTime": Prop("t_first", "time"),
            },
            {
                "Thing": Nav("Things", False, "id", "thing_id"),
                "Sensor": Nav("Sensors", False, "id", "sensor_id"),
                "ObservedProperty": Nav("ObservedProperties", False, "id", "op_id"),
                "Observations": Nav("Observations", True, "datastream_id", "id"),
            },
            _datastreams,
            _render_datastream,
            order=("thing_id", "ord"),
        ),
        EntityType(
            "Observation",
            "Observations",
            {
                "id": Prop("id", "str"),
                "phenomenonTime": Prop("phenomenon_time", "time"),
                "resultTime": Prop("result_time", "time"),
                "result": Prop("result", "num"),
                "resultQuality": Prop("flags", "obj"),
                "resultQuality/flags": Prop("flags", "int"),
                "resultQuality/valid": Prop("flags", "bool", f"(({{}} & {INVALID_MASK}) = 0)"),
                "resultQuality/uncertainty": Prop("u", "num"),
                "resultQuality/calibration_version": Prop("version_id", "int"),
                "parameters": Prop("seq", "obj"),
                "parameters/seq": Prop("seq", "int"),
                "parameters/window_s": Prop("window_s", "num"),
                "parameters/n_samples": Prop("n_samples", "int"),
            },
            {
                "Datastream": Nav("Datastreams", False, "id", "datastream_id"),
                "FeatureOfInterest": Nav("FeaturesOfInterest", False, "id", "foi_id"),
            },
            _observations,
            _render_observation,
            columns=_OBS_COLUMNS,
            complete=_complete_observation,
            # newest first, grouped by device: the order of the readings (device_id, ts DESC)
            # index, so a page needs no sort
            order=("device_id", "phenomenon_time DESC", "seq DESC", "ord"),
        ),
        EntityType(
            "FeatureOfInterest",
            "FeaturesOfInterest",
            {
                **_DESCRIBED,
                "encodingType": Prop("encoding_type", "str"),
                "feature": Prop("geometry", "json"),
                "properties": Prop("properties", "json"),
            },
            {"Observations": Nav("Observations", True, "foi_id", "id")},
            _sites,
            _render_foi,
        ),
    )
}
