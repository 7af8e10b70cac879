"""Run SensorThings requests: one SELECT per page, links, paging, ``$expand``, ``$select``.

A page is ``SELECT e.<columns> FROM (<base>) e WHERE <relation> AND <$filter> ORDER BY <$orderby>,
<tie-breaker> LIMIT top + 1 OFFSET skip``: the extra row says whether ``@iot.nextLink`` is
needed, without counting. Observations of one Datastream ordered by time page by *keyset*
(``$skiptoken`` = the last row's time and seq in the nextLink), so page 1,000 costs what page
1 costs; other orders use OFFSET. ``$expand`` runs the navigation query of each expanded entity
(the same code as the navigation path, so both always agree).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from odata_query import ast as oast
from psycopg import AsyncConnection, sql

from luftnett.api.sensorthings.entities import ENTITIES
from luftnett.api.sensorthings.filters import member, to_sql
from luftnett.api.sensorthings.model import (
    Ctx,
    EntityType,
    Params,
    parse_datastream_id,
    parse_observation_id,
)
from luftnett.api.sensorthings.options import DEFAULT_TOP, OptionError, Options

__all__ = ["Page", "Request", "fetch_one", "format_id", "page", "render"]

#: expanded collections hold at most this many entities unless their own $top says otherwise
EXPAND_TOP = 100


@dataclass(frozen=True, slots=True)
class Request:
    """What every query of one HTTP request shares."""

    conn: AsyncConnection[dict[str, Any]]
    root: str  # https://host/sta/v1.1
    cal_on: bool


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    next_link: str | None
    count: int | None


def format_id(ent: EntityType, value: Any) -> str:
    """The id as it appears in a URL: ``'text'`` (quotes doubled) or a bare number."""
    if ent.id_kind == "int":
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _narrow(
    ent: EntityType, rels: list[tuple[str, Any]], opts: Options, cal_on: bool
) -> tuple[Ctx, set[str]]:
    """The base query's context (Observations narrowed to a datastream, a reading or a site;
    Datastreams to a device), and the relation columns the narrowing already guarantees."""
    ctx = Ctx(cal_on=cal_on)
    implied: set[str] = set()
    if ent.plural == "Datastreams":  # one device's: no need to build everyone's
        for col, value in rels:
            if col == "id" and (ds := parse_datastream_id(value)) is not None:
                ctx = replace(ctx, device=ds[0], stream=ds[1])
                implied.add(col)
            elif col == "thing_id" and isinstance(value, str) and ctx.device is None:
                ctx = replace(ctx, device=value)
                implied.add(col)
        if len(rels) > 1:
            implied.clear()  # Things('a')/Datastreams('b'): SQL checks both
        return ctx, implied
    if ent.plural != "Observations":
        return ctx, implied
    # Observations?$filter=Datastream/id eq '...' and ...: the same narrowing as navigation
    # (the filter itself stays in the WHERE clause, so it is checked all the same)
    conds: list[tuple[str, Any, bool]] = []
    stack = [opts.filter] if opts.filter is not None else []
    while stack:
        n = stack.pop()
        if isinstance(n, oast.BoolOp) and isinstance(n.op, oast.And):
            stack += [n.left, n.right]
        elif (
            isinstance(n, oast.Compare)
            and isinstance(n.comparator, oast.Eq)
            and isinstance(n.right, oast.String)
        ):
            if (
                isinstance(n.left, oast.Attribute)
                and n.left.attr == "id"
                and isinstance(n.left.owner, oast.Identifier)
                and n.left.owner.name == "Datastream"
            ):
                conds.append(("datastream_id", n.right.val, False))
            elif isinstance(n.left, oast.Identifier) and n.left.name == "id":
                conds.append(("id", n.right.val, False))
    conds += [(col, value, True) for col, value in rels]  # relations last: they win
    for col, value, rel in conds:
        if col == "datastream_id" and (ds := parse_datastream_id(value)) is not None:
            ctx = replace(ctx, device=ds[0], stream=ds[1], ts=None, seq=None)
        elif col == "id" and (ob := parse_observation_id(value)) is not None:
            ctx = replace(ctx, device=ob[0], stream=ob[1], ts=ob[2], seq=ob[3])
        elif col in ("id", "datastream_id"):  # cannot be an Observation's: no rows
            ctx = replace(ctx, empty=True)
        elif col == "foi_id" and isinstance(value, str):
            ctx = replace(ctx, site=value)
            continue  # narrows to the site's devices only: the condition stays
        else:
            continue
        if rel:
            implied.add(col)
    if len([c for c, _, rel in conds if rel and c in ("id", "datastream_id")]) > 1:
        implied.clear()  # two relations: let SQL check both
    return ctx, implied


def _keyset(ent: EntityType, ctx: Ctx, opts: Options) -> bool | None:
    """Descending flag when this page may use keyset paging, else None."""
    if ent.plural != "Observations" or ctx.device is None or ctx.stream is None:
        return None
    if not opts.orderby:
        return True  # newest first, as the whole collection
    if len(opts.orderby) == 1 and opts.orderby[0][0] in ("phenomenonTime", "resultTime"):
        return opts.orderby[0][1]
    return None


def _token(value: str) -> tuple[dt.datetime, int]:
    try:
        ts, seq = value.rsplit("~", 1)
        t = dt.datetime.fromisoformat(ts)
        if t.tzinfo is None:
            raise ValueError(ts)
        return t, int(seq)
    except (ValueError, OverflowError):
        raise OptionError(
            "$skiptoken is not one this server wrote; follow @iot.nextLink as given"
        ) from None


async def page(
    req: Request,
    ent: EntityType,
    rels: list[tuple[str, Any]],
    opts: Options,
    path_url: str,
    top_default: int = DEFAULT_TOP,
    *,
    one: bool = False,
) -> Page:
    """One page of ``ent`` where every ``(column, value)`` of ``rels`` holds."""
    ctx, implied = _narrow(ent, rels, opts, req.cal_on)
    if ctx.site is not None:  # the devices ever deployed there: an index scan per device
        cur = await req.conn.execute(
            "SELECT DISTINCT device_id FROM deployments WHERE site_id = %s", (ctx.site,)
        )
        devices = [r["device_id"] for r in await cur.fetchall()]
        if len(devices) == 1:
            ctx = replace(ctx, device=devices[0], site=None)
        elif not devices:
            ctx = replace(ctx, empty=True, site=None)
    if ent.plural == "Observations" and (
        one  # navigation may go on from this Observation to its FeatureOfInterest
        or any(e.nav == "FeatureOfInterest" for e in opts.expand)
        or any(col == "foi_id" for col, _ in rels)
        or "FeatureOfInterest" in (opts.filter_text or "")
        or any("FeatureOfInterest" in path for path, _ in opts.orderby)
    ):
        ctx = replace(ctx, foi=True)
    p = Params()
    base = ent.base(ctx, p)
    where: list[sql.Composable] = []
    for col, value in rels:
        if value is None:
            where.append(sql.SQL("false"))
        elif col not in implied:
            where.append(sql.SQL("e.{} = {}").format(sql.Identifier(col), p.add(value)))
    if opts.filter is not None:
        where.append(to_sql(opts.filter, ent, "e", ctx, p))
    count = None
    if opts.count:
        q = sql.SQL("SELECT count(*) AS n FROM ({base}) e WHERE {w}").format(
            base=base, w=sql.SQL(" AND ").join(where or [sql.SQL("true")])
        )
        cur = await req.conn.execute(q, p.values)
        row = await cur.fetchone()
        count = int(row["n"]) if row else 0
    desc = _keyset(ent, ctx, opts)
    order: list[sql.Composable] = []
    if desc is not None:
        d = sql.SQL("DESC" if desc else "ASC")
        order = [sql.SQL("e.phenomenon_time {}").format(d), sql.SQL("e.seq {}").format(d)]
        if opts.skiptoken is not None:
            t, s = _token(opts.skiptoken)
            cmp = sql.SQL("<" if desc else ">")
            where.append(
                sql.SQL(
                    "e.phenomenon_time {c}= {t} AND (e.phenomenon_time {c} {t} OR e.seq {c} {s})"
                ).format(c=cmp, t=p.add(t), s=p.add(s))
            )
    else:
        if opts.skiptoken is not None:
            raise OptionError("$skiptoken only pages Observations of one Datastream by time")
        for path, is_desc in opts.orderby:
            expr = member(path, ent, "e", ctx, p)
            order.append(
                sql.SQL("{} {} NULLS LAST").format(expr, sql.SQL("DESC" if is_desc else "ASC"))
            )
        for c in ent.order:
            col, _, direction = c.partition(" ")
            order.append(
                sql.SQL("e.{} {}").format(sql.Identifier(col), sql.SQL(direction or "ASC"))
            )
    top = opts.top if opts.top is not None else top_default
    q = sql.SQL(
        "SELECT {cols} FROM ({base}) e WHERE {w} ORDER BY {o} LIMIT {lim} OFFSET {off}"
    ).format(
        cols=sql.SQL("e.*")
        if ent.columns is None
        else sql.SQL(", ").join(sql.Identifier("e", c) for c in ent.columns),
        base=base,
        w=sql.SQL(" AND ").join(where or [sql.SQL("true")]),
        o=sql.SQL(", ").join(order),
        lim=p.add(top + 1),
        off=p.add(opts.skip),
    )
    cur = await req.conn.execute(q, p.values)
    rows = list(await cur.fetchall())
    if ent.complete is not None:
        for r in rows:
            ent.complete(r)
    next_link = None
    if len(rows) > top and top == 0:
        rows = []
    elif len(rows) > top:
        rows = rows[:top]
        raw = dict(opts.raw)
        raw["$top"] = str(top)
        if desc is not None and rows:
            last = rows[-1]
            raw["$skiptoken"] = f"{last['phenomenon_time'].isoformat()}~{last['seq']}"
            raw.pop("$skip", None)
        else:
            raw["$skip"] = str(opts.skip + top)
        next_link = f"{path_url}?{urlencode(raw)}"
    return Page(rows, next_link, count)


async def fetch_one(
    req: Request, ent: EntityType, rels: list[tuple[str, Any]], opts: Options | None = None
) -> dict[str, Any] | None:
    got = await page(
        req, ent, rels, replace(opts or Options(), top=2, skip=0, count=False), "", one=True
    )
    return got.rows[0] if got.rows else None


def _selected(ent: EntityType, opts: Options) -> set[str] | None:
    if opts.select is None:
        return None
    allowed = {"id"} | {k for k in ent.props if "/" not in k} | set(ent.navs)
    for s in opts.select:
        if s not in allowed:
            raise OptionError(
                f"$select: {ent.name} has no property {s!r}; it has: {', '.join(sorted(allowed))}"
            )
    return set(opts.select)


async def render(
    req: Request, ent: EntityType, rows: list[dict[str, Any]], opts: Options
) -> list[dict[str, Any]]:
    """Entities as JSON objects with ``@iot.`` links, ``$select`` and ``$expand`` applied."""
    sel = _selected(ent, opts)
    expands = []
    for e in opts.expand:
        if e.nav not in ent.navs:
            raise OptionError(
                f"$expand: {ent.name} has no navigation property {e.nav!r}; it has: "
                f"{', '.join(ent.navs)}"
            )
        expands.append(e)
    out = []
    navs = [(f"{name}@iot.navigationLink", f"/{name}") for name in ent.navs]
    prefix = f"{req.root}/{ent.plural}("
    for r in rows:
        self_link = f"{prefix}{format_id(ent, r['id'])})"
        obj: dict[str, Any] = {"@iot.id": r["id"], "@iot.selfLink": self_link}
        obj.update(ent.render(r))
        for key, suffix in navs:
            obj[key] = self_link + suffix
        if sel is not None:
            keep = {"@iot.id"} if "id" in sel else set()
            keep |= {k for k in obj if k in sel or (k.split("@")[0] in sel and "@iot.nav" in k)}
            obj = {k: v for k, v in obj.items() if k in keep}
        for e in expands:
            nav = ent.navs[e.nav]
            target = ENTITIES[nav.target]
            rel = [(nav.target_col, r[nav.parent_col])]
            link = f"{self_link}/{e.nav}"
            if nav.many:
                got = await page(req, target, rel, e.options, link, EXPAND_TOP)
                obj[e.nav] = await render(req, target, got.rows, e.options)
                if got.count is not None:
                    obj[f"{e.nav}@iot.count"] = got.count
                if got.next_link is not None:
                    obj[f"{e.nav}@iot.nextLink"] = got.next_link
            else:
                one = await fetch_one(req, target, rel, e.options)
                if one is not None:
                    obj[e.nav] = (await render(req, target, [one], e.options))[0]
        out.append(obj)
    return out
