"""``/sta/v1.1``: the read-only OGC SensorThings API (v1.1) routes and resource paths.

Resource paths: ``/Things``, ``/Things('id')``, ``/Things('id')/Datastreams``,
``/Datastreams('id')/Observations``, ``/Observations('id')/Datastream/Thing``,
``/Things('id')/name``, ``/Things('id')/name/$value`` - any chain of navigation properties,
each step a collection, a collection member ``Nav('id')`` or a to-one entity.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from psycopg import errors as pg_errors

from luftnett.api import calibration
from luftnett.api.deps import Conn, ReadAccess
from luftnett.api.sensorthings import engine
from luftnett.api.sensorthings.entities import ENTITIES
from luftnett.api.sensorthings.model import EntityType
from luftnett.api.sensorthings.options import (
    DEFAULT_TOP,
    MAX_TOP,
    OptionError,
    Options,
    parse_options,
)

__all__ = ["CONFORMANCE", "PREFIX", "router"]

PREFIX = "/sta/v1.1"
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
]
#: a query that runs longer is cancelled and answered 503 (narrow the $filter)
STATEMENT_TIMEOUT_MS = 30_000

router = APIRouter(prefix=PREFIX, tags=["sensorthings"], dependencies=[ReadAccess])

_SEGMENT = re.compile(r"^([A-Za-z]+)(?:\((?:'((?:[^']|'')*)'|(\d{1,18}))\))?$")


class _NotFound(Exception):
    pass


def _dumps(body: Any) -> bytes:
    """JSON with times as ISO 8601 (``Z`` for UTC)."""
    return orjson.dumps(body, option=orjson.OPT_UTC_Z)


def _json(body: Any, status: int = 200) -> Response:
    return Response(_dumps(body), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"code": status, "type": "error", "message": message, "detail": message}, status)


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _params(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in request.query_params.multi_items():
        if k in out:
            raise OptionError(f"query option {k[:40]!r} is given twice")
        out[k] = v
    return out


_DESC = (
    "Read-only OGC SensorThings API 1.1 (docs/sensorthings.md). Resource paths such as "
    "`Things`, `Things('dev-1')/Datastreams`, `Datastreams('dev-1:pm25_ugm3:raw')/Observations`"
    "; options `$filter` (comparisons, and/or/not, functions; ISO instants on phenomenonTime), "
    f"`$top` (default {DEFAULT_TOP}, at most {MAX_TOP}), `$skip`, `$orderby`, `$select`, "
    "`$expand` (nested options in parentheses), `$count`. Malformed or unsupported options: "
    "400 with a message."
)

Top = Annotated[str | None, Query(alias="$top", description=f"page size, 0..{MAX_TOP}")]
Skip = Annotated[str | None, Query(alias="$skip", description="entities to skip")]
Count = Annotated[str | None, Query(alias="$count", description="true: add @iot.count")]
OrderBy = Annotated[
    str | None, Query(alias="$orderby", description="e.g. phenomenonTime desc,id asc")
]
Select = Annotated[str | None, Query(alias="$select", description="e.g. result,phenomenonTime")]
ExpandQ = Annotated[
    str | None, Query(alias="$expand", description="e.g. Datastreams($top=2;$select=name)")
]
Filter = Annotated[
    str | None,
    Query(alias="$filter", description="e.g. phenomenonTime ge 2026-01-01T00:00:00Z"),
]


@router.get("", summary="SensorThings service root", description=_DESC)
async def service_root(request: Request) -> Response:
    root = _root(request)
    return _json(
        {
            "value": [{"name": name, "url": f"{root}/{name}"} for name in ENTITIES],
            "serverSettings": {"conformance": CONFORMANCE},
        }
    )


@router.get(
    "/{path:path}",
    summary="SensorThings resource path",
    description=_DESC,
    responses={400: {"description": "malformed or unsupported option"}, 404: {}},
)
async def resource(
    request: Request,
    conn: Conn,
    path: str,
    top: Top = None,
    skip: Skip = None,
    count: Count = None,
    orderby: OrderBy = None,
    select: Select = None,
    expand: ExpandQ = None,
    filter_: Filter = None,
) -> Response:
    # the $-options are declared above for the OpenAPI description only; they are read from
    # the query string as a whole, so an unknown or repeated option is a 400 too
    if path in ("", "/"):
        return await service_root(request)
    try:
        opts = parse_options(_params(request))
        req = engine.Request(conn, _root(request), await calibration.available(conn))
        async with conn.transaction():
            await conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS:d}")
            return await _resolve(req, path, opts, str(request.url).split("?", 1)[0])
    except OptionError as exc:
        return _error(400, str(exc))
    except RecursionError:
        return _error(400, "$filter or $expand is nested too deeply")
    except _NotFound as exc:
        return _error(404, str(exc))
    except pg_errors.QueryCanceled:
        return _error(
            503, "the query took too long and was cancelled; narrow it with $filter or $top"
        )


def _segment(text: str) -> tuple[str, str | int | None]:
    m = _SEGMENT.match(text)
    if not m:
        raise _NotFound(
            f"{text[:80]!r} is not a SensorThings path segment; write e.g. Things, "
            "Things('id') or Datastreams('id')/Observations"
        )
    if m.group(2) is not None:
        return m.group(1), m.group(2).replace("''", "'")
    if m.group(3) is not None:
        return m.group(1), int(m.group(3))
    return m.group(1), None


def _key(ent: EntityType, key: str | int) -> str | int:
    if ent.id_kind == "int":
        if isinstance(key, int):
            return key
        if key.isdigit() and len(key) < 19:
            return int(key)
        raise _NotFound(f"{ent.plural} ids are numbers (got {key[:40]!r})")
    return str(key)


async def _resolve(req: engine.Request, path: str, opts: Options, url: str) -> Response:
    parts = [s for s in path.split("/") if s]
    name, key = _segment(parts[0])
    if name not in ENTITIES:
        raise _NotFound(
            f"no entity set {name!r}; the service root lists them: {', '.join(ENTITIES)}"
        )
    ent = ENTITIES[name]
    if key is None:
        return await _collection(req, ent, [], opts, url, parts[1:])
    rels: list[tuple[str, Any]] = [("id", _key(ent, key))]
    row = await engine.fetch_one(req, ent, rels)
    if row is None:
        raise _NotFound(f"no {ent.name} with id {engine.format_id(ent, rels[0][1])}")
    i = 1
    while i < len(parts):
        seg = parts[i]
        i += 1
        if seg in ("$value", "$ref"):
            raise _NotFound(f"{seg} is supported after a property only (Things('x')/name/$value)")
        nav_name, key = _segment(seg)
        if nav_name in ent.navs:
            nav = ent.navs[nav_name]
            target = ENTITIES[nav.target]
            rels = [(nav.target_col, row[nav.parent_col])]
            if nav.many and key is None:
                return await _collection(req, target, rels, opts, url, parts[i:])
            if key is not None:
                if not nav.many:
                    raise _NotFound(f"{nav_name} is one entity; write .../{nav_name} without id")
                rels.append(("id", _key(target, key)))
            ent = target
            found = await engine.fetch_one(req, ent, rels)
            if found is None:
                raise _NotFound(f"no such {ent.name} under this path")
            row = found
            continue
        if key is None and (nav_name in ent.props or nav_name == "id"):
            return await _property(req, ent, row, nav_name, parts[i:])
        raise _NotFound(
            f"{ent.name} has no navigation property or property {nav_name!r}; navigation: "
            f"{', '.join(ent.navs)}"
        )
    return _json((await engine.render(req, ent, [row], opts))[0])


async def _property(
    req: engine.Request, ent: EntityType, row: dict[str, Any], name: str, rest: list[str]
) -> Response:
    rendered = (await engine.render(req, ent, [row], Options()))[0]
    value = rendered.get("@iot.id" if name == "id" else name)
    if rest == ["$value"]:
        if isinstance(value, str):
            return Response(value, media_type="text/plain")
        if isinstance(value, dt.datetime):
            return Response(value.isoformat().replace("+00:00", "Z"), media_type="text/plain")
        return Response(_dumps(value), media_type="application/json")
    if rest:
        raise _NotFound(f"nothing may follow the property {name} but $value")
    return _json({name: value})


async def _collection(
    req: engine.Request,
    ent: EntityType,
    rels: list[tuple[str, Any]],
    opts: Options,
    url: str,
    rest: list[str],
) -> Response:
    if rest:
        raise _NotFound(f"address one {ent.name} by id before {rest[0][:60]!r}")
    got = await engine.page(req, ent, rels, opts, url)
    body: dict[str, Any] = {}
    if got.count is not None:
        body["@iot.count"] = got.count
    if got.next_link is not None:
        body["@iot.nextLink"] = got.next_link
    body["value"] = await engine.render(req, ent, got.rows, opts)
    return _json(body)
