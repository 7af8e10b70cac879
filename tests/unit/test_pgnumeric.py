"""PostgreSQL's real -> numeric conversion (6 significant digits) and exact group sums,
reproduced in numpy, against Python's correctly rounded ``%.6g`` and exact Decimal sums."""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from luftnett.collector.pgnumeric import decimal_parts, group_sums

f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def _expected(x: float) -> Decimal:
    return Decimal(f"{x:.6g}")


@settings(max_examples=300, deadline=None)
@given(st.lists(f32, min_size=1, max_size=60))
def test_each_value_is_its_six_digit_decimal(values: list[float]) -> None:
    x = np.array(values, dtype=np.float32)
    digits, exponent = decimal_parts(x)
    for v, d, e in zip(x.tolist(), digits.tolist(), exponent.tolist(), strict=True):
        want = _expected(v)
        assert Decimal(d).scaleb(e) == want, v
        assert d == 0 or d % 10 != 0  # trailing zeros stripped
        # the display scale PostgreSQL gives the numeric
        assert max(0, -e) == max(0, -want.normalize().as_tuple().exponent), v


def test_ties_carries_and_powers_of_ten() -> None:
    values = [999999.5, 9.999995, 0.1, 1e-5, 1234567.0, 100000.0, 1e-45, 3.4e38, -0.0, 0.0,
              2.5e-7, 1.0000005, 123456.5, 9999995.0]  # fmt: skip
    x = np.array(values, dtype=np.float32)
    digits, exponent = decimal_parts(x)
    got = [Decimal(d).scaleb(e) for d, e in zip(digits.tolist(), exponent.tolist(), strict=True)]
    assert got == [_expected(v) for v in x.tolist()]
    assert got[4] == Decimal("1234570") and got[2] == Decimal("0.1")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), f32), min_size=1, max_size=80))
def test_group_sums_are_exact_with_the_largest_scale(pairs: list[tuple[int, float]]) -> None:
    g = np.array([p[0] for p in pairs], dtype=np.int64)
    x = np.array([p[1] for p in pairs], dtype=np.float32)
    got = group_sums(g, x, 6)
    for k in range(6):
        terms = [_expected(v) for gg, v in zip(g.tolist(), x.tolist(), strict=True) if gg == k]
        if not terms:
            assert got[k] is None
            continue
        with localcontext() as ctx:
            ctx.prec = 200  # exact: far more digits than any float32 sum needs
            want = sum(terms, Decimal(0))
        scale = max(max(0, -t.normalize().as_tuple().exponent) for t in terms)
        assert got[k] == want
        assert max(0, -got[k].as_tuple().exponent) == scale  # as PostgreSQL displays it
