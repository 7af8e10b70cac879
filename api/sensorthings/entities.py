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
Sensor              sensor models of ``devices``, ``device_sensors`` model: ``'sds011'``
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

from typing import Any

from psycopg import sql

from luftnett.api.calibration import CALIBRATED
from luftnett.api.quality import INVALID_MASK
from luftnett.api.sensorthings.model import (
    Ctx,
    EntityType,
    Nav,
    Params,
    Prop,
    iso,
    lit,
    measured,
    streams,
    values_list,
)
from luftnett.api.sensorthings.observations import (
    OBS_COLUMNS,
    complete_observation,
    observations,
    render_observation,
)
from luftnett.contracts.units import QUANTITIES
from luftnett.db.schema import DEVICE_MODELS

__all__ = ["ENTITIES", "OBSERVED_PROPERTIES"]


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
            pairs=values_list(list(CALIBRATED.items()), p)
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
FROM (SELECT sensor_model FROM devices UNION SELECT sensor_model FROM device_sensors) m
LEFT JOIN (VALUES {known}) AS k(model, description) ON k.model = m.sensor_model
"""


def _sensors(ctx: Ctx, p: Params) -> sql.Composable:
    return sql.SQL(_SENSORS_SQL).format(known=values_list(list(_SENSORS.items()), p))


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
    ).format(rows=values_list(rows, p))


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
       sm.sensor_model AS sensor_id,
       CASE WHEN st.kind = 'raw'
            THEN (SELECT min(r.ts) FROM readings r WHERE r.device_id = d.device_id) END AS t_first,
       CASE WHEN st.kind = 'raw'
            THEN (SELECT max(r.ts) FROM readings r WHERE r.device_id = d.device_id) END AS t_last
FROM devices d CROSS JOIN (VALUES {streams})
    AS st(quantity, kind, ord, label, description, unit_symbol, unit_name, unit_definition)
-- the Sensor of a Datastream: the device's sensor model that measures its quantity (the one
-- heard from last, if several: a replaced sensor)
CROSS JOIN LATERAL (SELECT dd.sensor_model FROM {device_models} dd
                    WHERE dd.device_id = d.device_id AND {measured}
                    ORDER BY dd.heard DESC NULLS LAST, dd.sensor_model LIMIT 1) sm
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
        om=lit(OM_MEASUREMENT),
        streams=values_list(rows, p),
        measured=measured("dd.sensor_model", sql.SQL("st.quantity"), p),
        device_models=sql.SQL(DEVICE_MODELS),
        where=sql.Composed(where),
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
        out["phenomenonTime"] = f"{iso(r['t_first'])}/{iso(r['t_last'])}"
        out["resultTime"] = out["phenomenonTime"]
    return out


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
            observations,
            render_observation,
            columns=OBS_COLUMNS,
            complete=complete_observation,
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
