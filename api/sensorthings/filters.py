"""``$filter`` and ``$orderby`` paths as parameterised SQL over an entity set's base columns.

Supported (anything else is a 400 that says so):

- comparisons ``eq ne gt ge lt le`` and ``in (...)``, ``and or not``, parentheses, ``eq null``;
- arithmetic ``add sub mul div mod`` and unary minus on numbers;
- properties of the entity (``result``, ``phenomenonTime``, ``name``, ``id`` / ``@iot.id``),
  keys of JSON properties (``properties/site_type``, ``unitOfMeasurement/symbol``),
  ``resultQuality/valid``, ``resultQuality/flags``, ``parameters/seq``, and paths through
  to-one navigation properties (``Datastream/id``, ``Datastream/Thing/properties/site``);
- functions ``contains startswith endswith tolower toupper length trim concat``,
  ``year month day hour minute second`` (UTC), ``round floor ceiling``, ``now()``;
- literals: strings ``'x'`` (``''`` for a quote), numbers, ``true``/``false``, ``null`` and
  ISO 8601 instants with a UTC offset (``2026-01-01T00:00:00Z``, quoted or not).

Every literal becomes a query parameter with an explicit SQL type; identifiers come from the
entity tables in :mod:`~luftnett.api.sensorthings.entities`, never from the request.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from odata_query import ast as oast
from psycopg import sql

from luftnett.api.sensorthings.entities import ENTITIES
from luftnett.api.sensorthings.model import Ctx, EntityType, Kind, Params
from luftnett.api.sensorthings.options import OptionError

__all__ = ["FUNCTIONS", "member", "to_sql"]

_CAST = {
    "str": "text",
    "num": "float8",
    "int": "bigint",
    "time": "timestamptz",
    "bool": "boolean",
}
_CMP = {
    oast.Eq: "=",
    oast.NotEq: "<>",
    oast.Lt: "<",
    oast.LtE: "<=",
    oast.Gt: ">",
    oast.GtE: ">=",
}
_ARITH = {oast.Add: "+", oast.Sub: "-", oast.Mult: "*", oast.Div: "/", oast.Mod: "%"}
_LIMITS = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(2200, 1, 1, tzinfo=dt.UTC))


@dataclass(frozen=True, slots=True)
class Typed:
    """A translated expression: SQL and type, or a literal still waiting for its type."""

    code: sql.Composable | None
    kind: Kind | None
    literal: oast._Literal | None = None
    json_path: tuple[sql.Composable, tuple[str, ...]] | None = None  # (column, keys)


class _Translator:
    def __init__(self, ctx: Ctx, params: Params) -> None:
        self.ctx = ctx
        self.p = params
        self.aliases = itertools.count()

    # --- members -------------------------------------------------------------------------
    def member(self, path: list[str], ent: EntityType, alias: str) -> Typed:
        joined = "/".join(path)
        if joined in ent.props:
            prop = ent.props[joined]
            if prop.kind == "obj":
                raise OptionError(
                    f"{joined} of {ent.name} is an object; name one of its members "
                    f"({', '.join(k for k in ent.props if k.startswith(joined + '/'))})"
                )
            col = sql.Identifier(alias, prop.column)
            return Typed(col if prop.expr is None else sql.SQL(prop.expr).format(col), prop.kind)
        head, rest = path[0], path[1:]
        if head in ent.props and ent.props[head].kind == "json" and rest:
            col = sql.Identifier(alias, ent.props[head].column)
            return Typed(None, "json", json_path=(col, tuple(rest)))
        if head in ent.navs:
            nav = ent.navs[head]
            if nav.many:
                raise OptionError(
                    f"{head} is a collection of {ent.name}; paths through collections "
                    "(any/all) are not supported in $filter or $orderby"
                )
            if not rest:
                raise OptionError(f"{head} is an entity; name one of its properties ({head}/id)")
            target = ENTITIES[nav.target]
            if rest == ["id"] and nav.target_col == "id":  # the key is on this side already
                return Typed(sql.Identifier(alias, nav.parent_col), target.props["id"].kind)
            sub = f"n{next(self.aliases)}"
            inner = self.member(rest, target, sub)
            if inner.json_path is not None:
                inner = self.json_text(inner)
            base = target.base(Ctx(cal_on=self.ctx.cal_on), self.p)
            q = sql.SQL("(SELECT {v} FROM ({base}) {a} WHERE {a}.{tc} = {o}.{pc} LIMIT 1)").format(
                v=inner.code,
                base=base,
                a=sql.Identifier(sub),
                tc=sql.Identifier(nav.target_col),
                o=sql.Identifier(alias),
                pc=sql.Identifier(nav.parent_col),
            )
            return Typed(q, inner.kind)
        known = sorted(k for k in ent.props if "/" not in k) + sorted(ent.navs)
        raise OptionError(
            f"{ent.name} has no property {joined!r}; it has: {', '.join(known)} "
            "(JSON members as properties/<key>)"
        )

    def json_text(self, t: Typed, as_kind: Kind = "str") -> Typed:
        assert t.json_path is not None
        col, keys = t.json_path
        path = self.p.add(list(keys))
        if as_kind == "str":
            return Typed(sql.SQL("({} #>> {}::text[])").format(col, path), "str")
        jtype = {"num": "number", "int": "number", "bool": "boolean"}[as_kind]
        cast = _CAST["num" if as_kind == "int" else as_kind]
        return Typed(
            sql.SQL(
                "(CASE WHEN jsonb_typeof({c} #> {k}::text[]) = {t} "
                "THEN ({c} #>> {k}::text[])::{cast} END)"
            ).format(c=col, k=path, t=sql.Literal(jtype), cast=sql.SQL(cast)),
            "num" if as_kind == "int" else as_kind,
        )

    # --- literals ------------------------------------------------------------------------
    def literal(self, lit: oast._Literal, kind: Kind) -> sql.Composable:
        v: Any
        if isinstance(lit, oast.Null):
            raise OptionError("null can only be compared with eq or ne")
        if kind == "time":
            if isinstance(lit, oast.DateTime | oast.String):
                try:
                    v = dt.datetime.fromisoformat(lit.val)
                except (ValueError, OverflowError):
                    raise OptionError(f"{lit.val[:40]!r} is not an ISO 8601 instant") from None
                if v.tzinfo is None:
                    raise OptionError(f"{lit.val[:40]!r} has no UTC offset; add Z or +01:00")
            elif isinstance(lit, oast.Date):
                v = dt.datetime.combine(lit.py_val, dt.time(0), tzinfo=dt.UTC)
            else:
                raise OptionError(f"a time is compared with {_show(lit)}; give an ISO instant")
            if not _LIMITS[0] <= v < _LIMITS[1]:
                raise OptionError(f"times must lie between 1970 and 2200 (got {lit.val[:40]})")
        elif kind in ("num", "int"):
            if not isinstance(lit, oast.Integer | oast.Float):
                raise OptionError(f"a number is compared with {_show(lit)}")
            v = float(lit.val) if isinstance(lit, oast.Float) or kind == "num" else int(lit.val)
            if isinstance(v, int) and abs(v) >= 2**63:
                raise OptionError(f"{lit.val[:30]} is out of range for a whole number")
            if (isinstance(v, float) and v != v) or v in (float("inf"), float("-inf")):
                raise OptionError(f"{lit.val[:30]} is not a finite number")
            if isinstance(v, float):
                kind = "num"
        elif kind == "str":
            if isinstance(lit, (oast.String, oast.Integer)):
                v = lit.val
            else:
                raise OptionError(f"a text property is compared with {_show(lit)}")
            if "\x00" in v:
                raise OptionError("strings may not contain NUL characters")
        elif kind == "bool":
            if not isinstance(lit, oast.Boolean):
                raise OptionError(f"a true/false property is compared with {_show(lit)}")
            v = lit.py_val
        else:
            raise OptionError(f"cannot compare a {kind} value with {_show(lit)}")
        return sql.SQL("{}::{}").format(self.p.add(v), sql.SQL(_CAST[kind]))

    def resolve(self, t: Typed, want: Kind | None, other: Typed | None = None) -> Typed:
        """Give ``t`` SQL of kind ``want`` (or the kind the other side implies)."""
        if t.json_path is not None:
            lit = other.literal if other is not None else None
            k: Kind = want or (
                "num"
                if isinstance(lit, oast.Integer | oast.Float)
                else "bool"
                if isinstance(lit, oast.Boolean)
                else "str"
            )
            return self.json_text(t, k)
        if t.literal is not None:
            kind = want or _literal_kind(t.literal)
            return Typed(self.literal(t.literal, kind), kind)
        if t.kind == "json":
            raise OptionError("a JSON object cannot be compared; name one of its members (a/b)")
        return t

    # --- expressions ---------------------------------------------------------------------
    def expr(self, node: oast._Node, ent: EntityType, alias: str) -> Typed:
        if isinstance(node, oast._Literal):
            if isinstance(node, oast.List | oast.Geography | oast.Duration | oast.GUID):
                raise OptionError(f"{type(node).__name__} literals are not supported here")
            return Typed(None, None, literal=node)
        if isinstance(node, oast.Identifier | oast.Attribute):
            return self.member(_path(node), ent, alias)
        if isinstance(node, oast.Compare):
            return Typed(self.compare(node, ent, alias), "bool")
        if isinstance(node, oast.BoolOp):
            a = self.boolean(node.left, ent, alias)
            b = self.boolean(node.right, ent, alias)
            op = "AND" if isinstance(node.op, oast.And) else "OR"
            return Typed(sql.SQL("({} {} {})").format(a, sql.SQL(op), b), "bool")
        if isinstance(node, oast.UnaryOp):
            if isinstance(node.op, oast.Not):
                return Typed(
                    sql.SQL("(NOT {})").format(self.boolean(node.operand, ent, alias)), "bool"
                )
            t = self.resolve(self.expr(node.operand, ent, alias), None)
            if t.kind not in ("num", "int"):
                raise OptionError("unary minus needs a number")
            return Typed(sql.SQL("(-{})").format(t.code), t.kind)
        if isinstance(node, oast.BinOp):
            x = self.expr(node.left, ent, alias)
            y = self.expr(node.right, ent, alias)
            ra = self.resolve(x, "num" if x.json_path or x.literal else None, y)
            rb = self.resolve(y, "num" if y.json_path or y.literal else None, x)
            if ra.kind not in ("num", "int") or rb.kind not in ("num", "int"):
                raise OptionError("add, sub, mul, div and mod work on numbers only")
            op = _ARITH[type(node.op)]
            if op in ("/", "%"):  # a zero divisor gives NULL (no match), not an error
                return Typed(
                    sql.SQL("({}::float8 {} nullif({}::float8, 0))").format(
                        ra.code, sql.SQL(op if op == "/" else "%"), rb.code
                    )
                    if op == "/"
                    else sql.SQL("mod({}::numeric, nullif({}::numeric, 0))::float8").format(
                        ra.code, rb.code
                    ),
                    "num",
                )
            return Typed(sql.SQL("({} {} {})").format(ra.code, sql.SQL(op), rb.code), "num")
        if isinstance(node, oast.Call):
            return self.call(node, ent, alias)
        raise OptionError(f"{type(node).__name__} expressions are not supported in $filter")

    def boolean(self, node: oast._Node, ent: EntityType, alias: str) -> sql.Composable:
        t = self.expr(node, ent, alias)
        if t.json_path is not None:
            t = self.json_text(t, "bool")
        if t.kind != "bool" or t.code is None:
            raise OptionError(
                "$filter must be a condition (a comparison, a function such as contains(), "
                "or a true/false property), e.g. result gt 25"
            )
        return t.code

    def compare(self, node: oast.Compare, ent: EntityType, alias: str) -> sql.Composable:
        a = self.expr(node.left, ent, alias)
        b = self.expr(node.right, ent, alias)
        if isinstance(node.comparator, oast.In):
            if not isinstance(node.right, oast.List):
                raise OptionError("in needs a list: name in ('a', 'b')")
            ra = self.resolve(a, None, Typed(None, None, literal=_first(node.right)))
            assert ra.kind is not None
            items = [self.literal(v, ra.kind) for v in node.right.val]
            return sql.SQL("({} IN ({}))").format(ra.code, sql.SQL(", ").join(items))
        for x, y in ((a, b), (b, a)):
            if isinstance(y.literal, oast.Null):
                if x.literal is not None:
                    raise OptionError("compare null with a property")
                rx = self.resolve(x, "str" if x.json_path else None)
                if isinstance(node.comparator, oast.Eq):
                    return sql.SQL("({} IS NULL)").format(rx.code)
                if isinstance(node.comparator, oast.NotEq):
                    return sql.SQL("({} IS NOT NULL)").format(rx.code)
                raise OptionError("null can only be compared with eq or ne")
        if a.literal is None and a.json_path is None:
            ra = self.resolve(a, None)
            rb = self.resolve(b, _kind_for(ra.kind), ra)
        elif b.literal is None and b.json_path is None:
            rb = self.resolve(b, None)
            ra = self.resolve(a, _kind_for(rb.kind), rb)
        else:
            ra = self.resolve(a, None, b)
            rb = self.resolve(b, ra.kind, ra)
        if not _comparable(ra.kind, rb.kind):
            raise OptionError(f"cannot compare a {ra.kind} value with a {rb.kind} value")
        op = _CMP[type(node.comparator)]
        return sql.SQL("({} {} {})").format(ra.code, sql.SQL(op), rb.code)

    def call(self, node: oast.Call, ent: EntityType, alias: str) -> Typed:
        name = ".".join((*node.func.namespace, node.func.name))
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise OptionError(
                f"function {name}() is not supported; supported: {', '.join(sorted(FUNCTIONS))}"
            )
        arg_kinds, out_kind, template = spec
        args = []
        for arg, k in zip(node.args, arg_kinds, strict=True):
            t = self.resolve(self.expr(arg, ent, alias), k)
            if not _comparable(t.kind, k):
                raise OptionError(f"{name}() takes {', '.join(arg_kinds)} arguments")
            args.append(t.code)
        return Typed(template(*args), out_kind)


def _first(lst: oast.List) -> oast._Literal | None:
    return lst.val[0] if lst.val else None


def _kind_for(k: Kind | None) -> Kind | None:
    return "num" if k == "int" else k


def _comparable(a: Kind | None, b: Kind | None) -> bool:
    num = ("num", "int")
    return a == b or (a in num and b in num)


def _literal_kind(lit: oast._Literal) -> Kind:
    if isinstance(lit, oast.Integer | oast.Float):
        return "num"
    if isinstance(lit, oast.Boolean):
        return "bool"
    if isinstance(lit, oast.DateTime | oast.Date):
        return "time"
    return "str"


def _show(lit: oast._Literal) -> str:
    val = getattr(lit, "val", None)
    return f"{type(lit).__name__.lower()} {str(val)[:40]!r}" if val is not None else "null"


def _path(node: oast._Node) -> list[str]:
    if isinstance(node, oast.Identifier):
        return [*node.namespace, node.name] if node.namespace else [node.name]
    if isinstance(node, oast.Attribute):
        return [*_path(node.owner), node.attr]
    raise OptionError(f"{type(node).__name__} is not a property path")


def _fn(template: str) -> Callable[..., sql.Composable]:
    return lambda *args: sql.SQL(template).format(*args)


#: name -> (argument kinds, result kind, SQL template)
FUNCTIONS: dict[str, tuple[tuple[Kind, ...], Kind, Callable[..., sql.Composable]]] = {
    "contains": (("str", "str"), "bool", _fn("(strpos({}, {}) > 0)")),
    "startswith": (("str", "str"), "bool", _fn("starts_with({}, {})")),
    "endswith": (
        ("str", "str"),
        "bool",
        lambda a, b: sql.SQL("(right({}, length({})) = {})").format(a, b, b),
    ),
    "tolower": (("str",), "str", _fn("lower({})")),
    "toupper": (("str",), "str", _fn("upper({})")),
    "trim": (("str",), "str", _fn("btrim({})")),
    "length": (("str",), "num", _fn("length({})")),
    "concat": (("str", "str"), "str", _fn("({} || {})")),
    "year": (("time",), "num", _fn("extract(year FROM {} AT TIME ZONE 'UTC')")),
    "month": (("time",), "num", _fn("extract(month FROM {} AT TIME ZONE 'UTC')")),
    "day": (("time",), "num", _fn("extract(day FROM {} AT TIME ZONE 'UTC')")),
    "hour": (("time",), "num", _fn("extract(hour FROM {} AT TIME ZONE 'UTC')")),
    "minute": (("time",), "num", _fn("extract(minute FROM {} AT TIME ZONE 'UTC')")),
    "second": (("time",), "num", _fn("floor(extract(second FROM {}))")),
    "round": (("num",), "num", _fn("round({}::float8)")),
    "floor": (("num",), "num", _fn("floor({}::float8)")),
    "ceiling": (("num",), "num", _fn("ceil({}::float8)")),
    "now": ((), "time", _fn("now()")),
}


def to_sql(
    node: oast._Node, ent: EntityType, alias: str, ctx: Ctx, params: Params
) -> sql.Composable:
    """The boolean SQL of a ``$filter`` over ``alias`` (a row of ``ent``'s base)."""
    return _Translator(ctx, params).boolean(node, ent, alias)


def member(path: str, ent: EntityType, alias: str, ctx: Ctx, params: Params) -> sql.Composable:
    """SQL of a property path (``$orderby``); JSON members order as text."""
    tr = _Translator(ctx, params)
    t = tr.member(path.split("/"), ent, alias)
    if t.json_path is not None:
        t = tr.json_text(t)
    if t.kind == "json" or t.code is None:
        raise OptionError(f"cannot order by the object {path!r}; name one of its members")
    return t.code
