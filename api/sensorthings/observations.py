"""Observations: readings (raw) and ``calibrated_current`` (calibrated) as SQL, and their JSON.

One Datastream's Observations read ``readings`` through its ``(device_id, ts)`` index; the
whole collection unpivots each reading into its nine Datastreams (LATERAL VALUES).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from psycopg import sql

from luftnett.api.calibration import CALIBRATED
from luftnett.api.quality import INVALID_MASK, flag_names
from luftnett.api.sensorthings.model import (
    TS_ID_SQL,
    Ctx,
    Params,
    lit,
    measured,
    streams,
)
from luftnett.db.schema import DEVICE_MODELS

__all__ = ["OBS_COLUMNS", "complete_observation", "observations", "render_observation"]


@functools.cache
def _flag_names(bits: int) -> list[str]:
    return flag_names(bits)


_OBS_ONE = """
SELECT concat(r.device_id, {suffix}, ':', {ts_id}, ':', r.seq) AS id,
       r.device_id, r.seq, {ord} AS ord, {quantity} AS quantity, {kind} AS kind,
       r.ts AS phenomenon_time, r.ts AS result_time, {value} AS result,
       r.effective_flags AS flags,
       {u} AS u, {version} AS version_id, r.window_s, r.n_samples, r.sensor_serial,
       r.received_at, concat(r.device_id, {suffix}) AS datastream_id, {foi} AS foi_id
FROM readings_effective r {join}
WHERE {value} IS NOT NULL
  AND r.device_id IN (SELECT dd.device_id FROM {device_models} dd WHERE {measured}) {where}
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
WHERE x.result IS NOT NULL
  AND EXISTS (SELECT 1 FROM {device_models} dd
              WHERE dd.device_id = r.device_id AND {measured}) {where}
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
    ).format(c=sql.Identifier(alias), p=lit(CALIBRATED[q]))


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


def observations(ctx: Ctx, p: Params) -> sql.Composable:
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
            ).format(lit(CALIBRATED[s.quantity]))
        return sql.SQL(_OBS_ONE).format(
            quantity=lit(s.quantity),
            kind=lit(s.kind),
            ts_id=sql.SQL(TS_ID_SQL),
            suffix=lit(s.suffix),
            ord=lit(all_streams.index(s)),
            value=value,
            mask=lit(INVALID_MASK),
            u=u,
            version=version,
            foi=sql.SQL(_FOI_OF if ctx.foi else "NULL::text"),
            join=join,
            measured=measured("dd.sensor_model", lit(s.quantity), p),
            device_models=sql.SQL(DEVICE_MODELS),
            where=where,
        )
    joins: list[sql.Composable] = []
    values: list[sql.Composable] = []
    for i, s in enumerate(all_streams):
        if s.kind == "raw":
            values.append(
                sql.SQL("({q}, 'raw', {i}, r.{col}::float8, NULL::float8, NULL::bigint)").format(
                    q=lit(s.quantity), i=lit(i), col=sql.Identifier(s.quantity)
                )
            )
        elif ctx.cal_on:
            alias = f"cal_{s.quantity}"
            joins.append(_cal_join(s.quantity, alias))
            values.append(
                sql.SQL(
                    "({q}, 'calibrated', {i}, {a}.value::float8, {a}.u::float8, {a}.version_id)"
                ).format(q=lit(s.quantity), i=lit(i), a=sql.Identifier(alias))
            )
    return sql.SQL(_OBS_ALL).format(
        ts_id=sql.SQL(TS_ID_SQL),
        mask=lit(INVALID_MASK),
        foi=sql.SQL(_FOI_OF if ctx.foi else "NULL::text"),
        joins=sql.Composed(joins),
        values=sql.SQL(", ").join(values),
        measured=measured("dd.sensor_model", sql.SQL("x.quantity"), p),
        device_models=sql.SQL(DEVICE_MODELS),
        where=where,
    )


OBS_COLUMNS = (
    "device_id", "seq", "quantity", "kind", "phenomenon_time", "result", "flags", "u",
    "version_id", "window_s", "n_samples", "sensor_serial", "received_at", "foi_id",
)  # fmt: skip


def complete_observation(r: dict[str, Any]) -> None:
    """``id`` and ``datastream_id`` as the base's SQL writes them."""
    ds = f"{r['device_id']}:{r['quantity']}:{r['kind']}"
    ts: dt.datetime = r["phenomenon_time"].astimezone(dt.UTC)
    stamp = ts.strftime("%Y%m%dT%H%M%S.%fZ" if ts.microsecond else "%Y%m%dT%H%M%SZ")
    r["datastream_id"] = ds
    r["id"] = f"{ds}:{stamp}:{r['seq']}"


def render_observation(r: dict[str, Any]) -> dict[str, Any]:
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
