"""PostgreSQL's ``sum(x::numeric)`` of ``real`` values, computed exactly in numpy.

The rollups store exact sums (``numeric``) so that adding a batch's sum to an hour's equals
recomputing the hour from all its readings, whatever the order. PostgreSQL converts a
``real`` to ``numeric`` through its 6-significant-digit decimal text (``%.6g``, ``FLT_DIG``):
``3.1::real::numeric`` is ``3.1``, ``1234567::real::numeric`` is ``1234570``. The sum of such
numerics is exact, and its display scale (digits after the point) is the largest of its
terms'. :func:`decimal_parts` reproduces the conversion for a whole column at once (values
too close to a rounding tie for float64 arithmetic to decide, or of extreme magnitude, go
through Python's correctly rounded ``%.6g``), and :func:`group_sums` adds them per group in
integers: the batch's partial sums reach the database as the very numerics PostgreSQL would
have computed from the stored rows (a property test compares both on random values).
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import numpy.typing as npt

__all__ = ["decimal_parts", "group_sums"]

_DIGITS = 6  # FLT_DIG: the significant digits of float4 -> numeric
_P10 = np.array([float(10**i) for i in range(23)])  # exact powers of ten in float64
_FAST_E = 15  # |decimal exponent| beyond this: the exact slow path
_TIE = 1e-6  # float64 products this close to a rounding tie: the exact slow path


def _slow(x: float) -> tuple[int, int]:
    t = Decimal(f"{x:.{_DIGITS}g}").as_tuple()
    digits = int("".join(map(str, t.digits)))
    assert isinstance(t.exponent, int)
    return (-digits if t.sign else digits), t.exponent


def decimal_parts(
    x: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(digits, exponent)`` with ``x::numeric == digits * 10**exponent`` for finite float32
    values, trailing zeros stripped from ``digits`` (so ``max(0, -exponent)`` is the numeric's
    display scale; zero is ``(0, 0)``)."""
    x = np.asarray(x, dtype=np.float32)
    a = np.abs(x.astype(np.float64))  # exact
    n = a.size
    digits = np.zeros(n, dtype=np.int64)
    exponent = np.zeros(n, dtype=np.int64)
    nz = a > 0
    e = np.zeros(n, dtype=np.int64)
    with np.errstate(divide="ignore"):
        e[nz] = np.floor(np.log10(a[nz])).astype(np.int64)
    slow = nz & (np.abs(e) > _FAST_E)
    ok = nz & ~slow

    def scale(e: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """a * 10**(5 - e): one correctly rounded float64 operation with an exact power."""
        k = np.clip((_DIGITS - 1) - e, -22, 22)
        out: npt.NDArray[np.float64] = np.where(k >= 0, a * _P10[np.abs(k)], a / _P10[np.abs(k)])
        return out

    scaled = scale(e)
    # log10 may miss a power of ten by one either way: 6 digits must be left of the point
    e[ok & (scaled < 10.0 ** (_DIGITS - 1))] -= 1
    e[ok & (scaled >= 10.0**_DIGITS)] += 1
    scaled = scale(e)
    frac = scaled - np.floor(scaled)
    slow |= ok & (np.abs(frac - 0.5) < _TIE)
    ok &= ~slow
    m = np.rint(scaled)  # half to even, as printf on an exact tie (ties take the slow path)
    carry = ok & (m >= 10.0**_DIGITS)  # 999999.7 -> 1000000: the exponent grows by one
    m[carry] /= 10
    e[carry] += 1
    sign = np.where(np.signbit(x), -1, 1)
    digits[ok] = m[ok].astype(np.int64) * sign[ok]
    exponent[ok] = e[ok] - (_DIGITS - 1)
    for i in np.flatnonzero(slow).tolist():
        digits[i], exponent[i] = _slow(float(x[i]))
    # strip trailing zeros (at most 5 of 6 digits)
    for _ in range(_DIGITS):
        z = (digits % 10 == 0) & (digits != 0)
        if not z.any():
            break
        digits[z] //= 10
        exponent[z] += 1
    exponent[digits == 0] = 0
    return digits, exponent


def group_sums(
    group: npt.NDArray[np.int64], x: npt.NDArray[np.float32], n_groups: int
) -> list[Decimal | None]:
    """``sum(x::numeric)`` per group ``0 .. n_groups - 1`` (None where a group has no value),
    exactly as PostgreSQL computes it, display scale included. ``x`` is finite."""
    out: list[Decimal | None] = [None] * n_groups
    if not x.size:
        return out
    digits, exponent = decimal_parts(x)
    # integer partial sums per (group, exponent): |digits| < 10**6, so int64 holds them
    key = group.astype(np.int64) * 1024 + (exponent + 512)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    sums = np.add.reduceat(digits[order], starts)
    kg, ke = ks[starts] // 1024, ks[starts] % 1024 - 512
    first = np.flatnonzero(np.r_[True, kg[1:] != kg[:-1]])  # sorted: the least exponent
    terms = np.diff(np.r_[first, kg.size])  # exponents per group
    shift = ke - np.repeat(ke[first], terms)
    # the largest term times the most terms of a group bounds every total
    big = np.abs(sums).max() * 10.0 ** float(shift.max()) * terms.max() >= 2.0**62
    if big:  # extreme magnitudes in one group: Python integers
        totals = [0] * first.size
        at = np.repeat(np.arange(first.size), terms).tolist()
        for i, sm, sh in zip(at, sums.tolist(), shift.tolist(), strict=True):
            totals[i] += sm * 10**sh
    else:
        totals = np.add.reduceat(sums * 10**shift, first).tolist()
    # a numeric's display scale is its terms' largest: the least exponent, if negative
    for g, total, e in zip(kg[first].tolist(), totals, ke[first].tolist(), strict=True):
        out[g] = Decimal(f"{total}E{e}") if e < 0 else Decimal(total * 10**e)
    return out
