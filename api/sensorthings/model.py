"""The pieces every SensorThings entity set is built of: properties, navigation, the query
context, parameters, Datastream and Observation ids."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import sql

from luftnett.api.calibration import CALIBRATED
from luftnett.contracts.units import MODEL_QUANTITIES
from luftnett.db.schema import VALUE_COLUMNS

__all__ = [
    "KINDS",
    "TS_ID_SQL",
    "Ctx",
    "EntityType",
    "Kind",
    "Nav",
    "Params",
    "Prop",
    "Stream",
    "iso",
    "lit",
    "measured",
    "parse_datastream_id",
    "parse_observation_id",
    "streams",
    "values_list",
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
TS_ID_SQL = (
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


def lit(v: Any) -> sql.Literal:
    return sql.Literal(v)


def values_list(rows: list[tuple[Any, ...]], p: Params) -> sql.Composable:
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


def measured(model: str, quantity: sql.Composable, p: Params) -> sql.Composable:
    """SQL: the sensor model (column expression ``model``) measures ``quantity``
    (:data:`luftnett.contracts.units.MODEL_QUANTITIES`; a model not listed there measures
    every column quantity)."""
    pairs = [(m, q) for m, qs in sorted(MODEL_QUANTITIES.items()) for q in qs if q in VALUE_COLUMNS]
    return sql.SQL("({m} NOT IN ({known}) OR ({m}, {q}) IN (VALUES {pairs}))").format(
        m=sql.SQL(model),
        q=quantity,
        known=sql.SQL(", ").join(
            sql.SQL("{}::text").format(p.add(m)) for m in sorted(MODEL_QUANTITIES)
        ),
        pairs=values_list(pairs, p),
    )


def iso(v: Any) -> str | None:
    return None if v is None else v.isoformat().replace("+00:00", "Z")
