"""PostgreSQL array literals for the writer's ``unnest(%s::text[], ...)`` parameters.

psycopg dumps a list parameter element by element in Python (about 3 µs an element on the
benchmark machine): a batch's per-(device, hour) ledger counts, a thousand keys, cost more
than the rest of its bookkeeping. One ``str.join`` builds the same array as its text literal,
which the statement's cast (``%s::timestamptz[]``) reads as PostgreSQL reads any array input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

__all__ = ["int_array", "number_array", "text_array", "time_array"]


def int_array(values: Iterable[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def number_array(values: Iterable[float | Decimal | None]) -> str:
    """Floats (their shortest exact repr: a ``real[]`` cast reads a float32's value back
    exactly), Decimals (numeric, scale kept) or ints; None and NaN are NULL."""
    return "{" + ",".join("NULL" if v is None or v != v else str(v) for v in values) + "}"


def _quoted(text: str | None) -> str:
    if text is None:
        return "NULL"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def text_array(values: Sequence[str | None]) -> str:
    """Each element quoted (so any text, empty or "NULL", stays itself); None is NULL."""
    if not values:
        return "{}"
    if None not in values:
        raw = "\x00".join(values)  # type: ignore[arg-type]
        if "\\" not in raw and '"' not in raw:  # nothing to escape: one join
            return '{"' + '","'.join(values) + '"}'  # type: ignore[arg-type]
    return "{" + ",".join(map(_quoted, values)) + "}"


@lru_cache(maxsize=1 << 16)
def _iso(t: datetime) -> str:
    return t.isoformat()  # aware: with its offset


def time_array(values: Iterable[datetime]) -> str:
    """Aware times (a batch's hours repeat from batch to batch: each is formatted once)."""
    return "{" + ",".join(map(_iso, values)) + "}"
