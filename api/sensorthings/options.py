"""SensorThings query options: ``$top $skip $count $orderby $select $expand $filter``.

Parsed into :class:`Options` (nested for ``$expand=Datastreams($top=2;$orderby=name)``). A bad
option raises :class:`OptionError` with a message that says what is accepted; the router turns
it into a 400. ``$filter`` is parsed by the ``odata-query`` package (an OData v4 grammar) and
translated to SQL in :mod:`luftnett.api.sensorthings.filters`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from odata_query import ast as oast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

__all__ = [
    "DEFAULT_TOP",
    "MAX_TOP",
    "Expand",
    "OptionError",
    "Options",
    "parse_filter",
    "parse_options",
]

#: a collection page holds this many entities unless ``$top`` says otherwise, and never more
#: than MAX_TOP (server-driven paging: ``@iot.nextLink`` gives the rest)
DEFAULT_TOP = 100
MAX_TOP = 10_000
#: ``$skip`` beyond this is refused: follow ``@iot.nextLink`` (keyset) instead
MAX_SKIP = 10_000_000

SUPPORTED = "$top, $skip, $count, $orderby, $select, $expand, $filter, $resultFormat=default"


class OptionError(ValueError):
    """A query option that is malformed or not supported (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Expand:
    nav: str
    options: Options


@dataclass(frozen=True, slots=True)
class Options:
    top: int | None = None
    skip: int = 0
    count: bool = False
    orderby: tuple[tuple[str, bool], ...] = ()  # (property path, descending)
    select: tuple[str, ...] | None = None
    expand: tuple[Expand, ...] = ()
    filter: oast._Node | None = None
    filter_text: str | None = None
    skiptoken: str | None = None
    raw: dict[str, str] = field(default_factory=dict)  # as given, for nextLinks


_PATH = re.compile(r"^[A-Za-z@][A-Za-z0-9_.@]*(/[A-Za-z@][A-Za-z0-9_.@]*)*$")
_IOT_ID = re.compile(r"@iot\.id\b")


def _split_top(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside parentheses and single-quoted strings."""
    parts: list[str] = []
    depth = 0
    quoted = False
    cur: list[str] = []
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth < 0:
                raise OptionError(f"unbalanced ')' in {text[:200]!r}")
        if ch == sep and depth == 0 and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0 or quoted:
        raise OptionError(f"unbalanced parenthesis or quote in {text[:200]!r}")
    parts.append("".join(cur))
    return parts


def _int(name: str, value: str, lo: int, hi: int) -> int:
    if not re.fullmatch(r"\d{1,12}", value.strip()):
        raise OptionError(f"{name} must be a whole number from {lo} to {hi} (got {value[:40]!r})")
    n = int(value)
    if not lo <= n <= hi:
        raise OptionError(f"{name} must be from {lo} to {hi} (got {n})")
    return n


def _path(name: str, value: str) -> str:
    p = value.strip()
    p = "id" if p == "@iot.id" else _IOT_ID.sub("id", p)
    if not _PATH.match(p):
        raise OptionError(f"{name}: {value[:80]!r} is not a property path (e.g. name, id)")
    return p


def _iot_id_outside_strings(text: str) -> str:
    """``@iot.id`` -> ``id`` outside quoted strings (the OData grammar has no '@' names)."""
    parts = text.split("'")
    for i in range(0, len(parts), 2):  # even parts are outside quotes ('' escapes stay paired)
        parts[i] = _IOT_ID.sub("id", parts[i])
    return "'".join(parts)


def parse_filter(text: str) -> oast._Node:
    """The ``$filter`` expression as an OData AST; OptionError when it does not parse."""
    if len(text) > 4000:
        raise OptionError("$filter is longer than 4,000 characters")
    try:
        node: oast._Node = ODataParser().parse(ODataLexer().tokenize(_iot_id_outside_strings(text)))
    except ODataException as exc:
        raise OptionError(
            f"$filter does not parse ({exc}); write e.g. "
            "phenomenonTime ge 2026-01-01T00:00:00Z and result gt 25"
        ) from None
    except (ValueError, IndexError, TypeError, AttributeError) as exc:  # the grammar's own
        raise OptionError(f"$filter does not parse ({type(exc).__name__})") from None
    if node is None:
        raise OptionError("$filter is empty")
    return node


def _orderby(value: str) -> tuple[tuple[str, bool], ...]:
    out = []
    for item in _split_top(value, ","):
        words = item.split()
        if not words or len(words) > 2:
            raise OptionError(
                f"$orderby item {item[:80]!r}: write a property and asc or desc, "
                "e.g. phenomenonTime desc"
            )
        if len(words) == 2 and words[1].lower() not in ("asc", "desc"):
            raise OptionError(f"$orderby direction must be asc or desc (got {words[1][:20]!r})")
        out.append((_path("$orderby", words[0]), len(words) == 2 and words[1].lower() == "desc"))
    return tuple(out)


def _expand(value: str, depth: int) -> tuple[Expand, ...]:
    if depth > 4:
        raise OptionError("$expand is nested more than 4 levels deep")
    out: list[Expand] = []
    for item in _split_top(value, ","):
        item = item.strip()
        m = re.fullmatch(r"([A-Za-z]+(?:/[A-Za-z]+)*)\s*(?:\((.*)\))?", item, re.S)
        if not m:
            raise OptionError(
                f"$expand item {item[:80]!r}: write a navigation property, optionally with "
                "options in parentheses, e.g. Datastreams($top=2;$select=name)"
            )
        navs = m.group(1).split("/")
        inner: dict[str, str] = {}
        if m.group(2) is not None and m.group(2).strip():
            for opt in _split_top(m.group(2), ";"):
                if "=" not in opt:
                    raise OptionError(f"$expand option {opt[:80]!r}: write $name=value")
                k, v = opt.split("=", 1)
                inner[k.strip()] = v
        opts = parse_options(inner, depth + 1)
        for nav in reversed(navs[1:]):  # Datastreams/Observations: nested
            opts = Options(expand=(Expand(nav, opts),))
        for i, e in enumerate(out):  # Datastreams,Datastreams/Observations: one expand
            if e.nav == navs[0]:
                keep, add = (e.options, opts) if not e.options.expand else (opts, e.options)
                out[i] = Expand(e.nav, replace(keep, expand=keep.expand + add.expand))
                break
        else:
            out.append(Expand(navs[0], opts))
    return tuple(out)


def parse_options(params: dict[str, str], depth: int = 0) -> Options:
    """Options from query parameters (a ``$``-name each); OptionError on anything else."""
    kw: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for name, value in params.items():
        if not name.startswith("$"):
            raise OptionError(f"unknown query parameter {name[:40]!r}; supported: {SUPPORTED}")
        raw[name] = value
        if name == "$top":
            kw["top"] = _int("$top", value, 0, MAX_TOP)
        elif name == "$skip":
            kw["skip"] = _int("$skip", value, 0, MAX_SKIP)
        elif name == "$count":
            if value not in ("true", "false"):
                raise OptionError(f"$count must be true or false (got {value[:20]!r})")
            kw["count"] = value == "true"
        elif name == "$orderby":
            kw["orderby"] = _orderby(value)
        elif name == "$select":
            kw["select"] = tuple(_path("$select", s) for s in _split_top(value, ","))
        elif name == "$expand":
            kw["expand"] = _expand(value, depth)
        elif name == "$filter":
            kw["filter"] = parse_filter(value)
            kw["filter_text"] = value
        elif name == "$skiptoken" and depth == 0:
            kw["skiptoken"] = value
        elif name == "$resultFormat":
            if value != "default":
                raise OptionError(
                    f"$resultFormat={value[:20]!r} is not supported; only the default JSON"
                )
        else:
            raise OptionError(f"query option {name[:40]!r} is not supported; use {SUPPORTED}")
    return Options(raw=raw, **kw)
