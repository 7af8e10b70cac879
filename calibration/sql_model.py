"""A calibration model as SQL: the value and standard uncertainty of
:meth:`CalibrationModel.apply`, written as PostgreSQL expressions so that reprocessing runs as
one set-based ``INSERT … SELECT`` per chunk inside the database, without a round trip.

``CalibrationModel.apply`` (numpy) stays the reference; the tests check that both agree for
every family (linear, multilinear with RH/T/absolute-humidity/cross-gas terms, EPA–Barkjohn,
κ-Köhler, robust fits — a fit method, not a family) within float tolerance, including missing
inputs. The SQL mirrors numpy term by term and in the same order of operations:

* an input that is missing (NULL), NaN or ±inf is NULL and gives a NULL value, where numpy
  gives NaN (or ±inf); either way the reading gets no calibrated value (an infinite RH, which
  numpy's Köhler clipping would turn into 99 %, gives none);
* ``u = sqrt(greatest(gᵀ·Σ·g, 0) + s²)`` with ``g`` the gradient (the design row of a
  linear-family model, the Köhler gradient otherwise), expanded into its terms;
* RH is clipped (``least(greatest(rh, 0), rh_max)``) before the Köhler growth factor.

Where numpy would return ±inf (a division by zero, ``exp`` overflowing on absurd inputs)
PostgreSQL raises an error instead; :mod:`luftnett.calibration.jobs` then redoes that chunk
with numpy, so both paths store the same values.

Rendering is pure (``psycopg.sql`` composition only, no connection).
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg import sql

from luftnett.calibration.model import AH_TERM, CalibrationModel
from luftnett.db.schema import VALUE_COLUMNS

__all__ = ["ModelSQL", "input_expr", "model_sql"]

#: renders the SQL expression (float8, NULL when missing) of a reading quantity
InputRenderer = Callable[[str], sql.Composable]


def _f(x: float) -> sql.Composable:
    """A float8 constant, exactly the double ``x`` (``repr`` round-trips)."""
    return sql.SQL("{}::float8").format(sql.Literal(repr(float(x))))


def input_expr(name: str, alias: str = "r") -> sql.Composable:
    """The float8 value of reading quantity ``name``: a column of ``readings`` or a number in
    ``readings.extra``; NULL when missing, not finite or (in ``extra``) not a JSON number."""
    if name in VALUE_COLUMNS:
        col = sql.SQL("{}.{}::float8").format(sql.Identifier(alias), sql.Identifier(name))
        # NaN compares above Infinity in PostgreSQL, so this leaves out ±inf and NaN
        return sql.SQL("CASE WHEN abs({c}) < 'Infinity'::float8 THEN {c} END").format(c=col)
    extra = sql.SQL("{}.extra").format(sql.Identifier(alias))
    return sql.SQL(
        "CASE WHEN jsonb_typeof({e}->{k}) = 'number' THEN ({e}->>{k})::float8 END"
    ).format(e=extra, k=sql.Literal(name))


class ModelSQL:
    """The pieces of one model's SQL, in two levels so that each input and derived term
    (absolute humidity, Köhler growth) is computed once per row:

    * ``columns``: ``(name, expression)`` over the reading row — the inputs and derived terms
      (a derived term repeats the expressions of its inputs, not their names);
    * ``value`` and ``variance``: expressions over those column names; the standard
      uncertainty is ``sqrt(greatest(variance, 0) + s²)`` (:attr:`u`).
    """

    def __init__(self, model: CalibrationModel, render: InputRenderer) -> None:
        self.model = model
        self.columns: list[tuple[str, sql.Composable]] = []
        #: what each column is, in ``columns`` order: ``in:<quantity>`` for an input
        self.keys: list[str] = []
        self._names: dict[str, str] = {}
        self._render = render
        beta = model.coefficients
        sigma = model.covariance
        if model.family == "kohler":
            grad, value = self._kohler(beta)
        else:
            grad = [self._term(t) for t in model.terms]
            value = _sum([_mul(_f(b), g) for b, g in zip(beta, grad, strict=True)])
        self.value: sql.Composable = value
        self.variance: sql.Composable = _quadratic(grad, sigma)
        self.u: sql.Composable = sql.SQL("sqrt(greatest({}, 0::float8) + {})").format(
            self.variance, _f(model.residual_sd**2)
        )

    def _col(self, key: str, expr: sql.Composable) -> sql.Composable:
        """Register a column (once per key); the reference to it for value and u."""
        if key not in self._names:
            name = f"c{len(self.columns)}"
            self._names[key] = name
            self.columns.append((name, expr))
            self.keys.append(key)
        return sql.Identifier(self._names[key])

    def _input(self, name: str) -> tuple[sql.Composable, sql.Composable]:
        """(reference, inline expression) of a reading quantity."""
        expr = self._render(name)
        return self._col(f"in:{name}", expr), expr

    def _term(self, term: str) -> sql.Composable | None:
        """The design column of a linear-family term; None for the intercept (1)."""
        m = self.model
        if term == "intercept":
            return None
        if term == "sensor":
            return self._input(m.sensor)[0]
        if term == AH_TERM:
            assert m.rh is not None  # CalibrationModel checks
            assert m.temperature is not None
            t, rh = self._input(m.temperature)[1], self._input(m.rh)[1]
            # humidity.absolute_humidity_gm3, same order of operations
            ah = sql.SQL(
                "(216.7::float8 * (({rh} / 100::float8) * (6.1094::float8 * "
                "exp(17.625::float8 * {t} / ({t} + 243.04::float8))))) / ({t} + 273.15::float8)"
            ).format(rh=rh, t=t)
            return self._col("ah", ah)
        return self._input(term)[0]

    def _kohler(
        self, beta: tuple[float, ...]
    ) -> tuple[list[sql.Composable | None], sql.Composable]:
        m = self.model
        assert m.rh is not None  # CalibrationModel checks
        kappa, b0, b1 = beta
        x_ref, x = self._input(m.sensor)
        rh = self._input(m.rh)[1]
        # least/greatest skip NULLs; a missing RH must stay missing
        aw = sql.SQL(
            "(CASE WHEN {rh} IS NOT NULL THEN least(greatest({rh}, 0::float8), {mx}) "
            "/ 100::float8 END)"
        ).format(rh=rh, mx=_f(m.rh_max_pct))
        ratio_e = sql.SQL("({aw} / (1::float8 - {aw}))").format(aw=aw)
        g_e = sql.SQL("(1::float8 + {k} * {r})").format(k=_f(kappa), r=ratio_e)
        ratio = self._col("ratio", ratio_e)
        g = self._col("g", g_e)
        dry = self._col("dry", sql.SQL("{x} / {g}").format(x=x, g=g_e))
        g_kappa = sql.SQL("{nb1} * {x} * {r} / ({g} * {g})").format(
            nb1=_f(-b1), x=x_ref, r=ratio, g=g
        )
        value = sql.SQL("{b0} + {b1} * {dry}").format(b0=_f(b0), b1=_f(b1), dry=dry)
        return [g_kappa, None, dry], value


def _mul(c: sql.Composable, g: sql.Composable | None) -> sql.Composable:
    return c if g is None else sql.SQL("{} * {}").format(c, g)


def _sum(parts: list[sql.Composable]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(" + ").join(parts)) if parts else _f(0.0)


def _quadratic(
    grad: list[sql.Composable | None], sigma: tuple[tuple[float, ...], ...]
) -> sql.Composable:
    """``gᵀ Σ g`` expanded: ``Σ_i Σ_ii g_i² + 2 Σ_{i<j} Σ_ij g_i g_j`` (None = 1)."""
    parts: list[sql.Composable] = []
    for i, gi in enumerate(grad):
        for j in range(i, len(grad)):
            c = sigma[i][j] if i == j else sigma[i][j] + sigma[j][i]
            if c == 0.0:
                continue
            gj = grad[j]
            if gi is None:
                parts.append(_mul(_f(c), gj))
            elif gj is None:
                parts.append(_mul(_f(c), gi))
            else:
                parts.append(sql.SQL("{} * {} * {}").format(_f(c), gi, gj))
    return _sum(parts)


def model_sql(model: CalibrationModel, alias: str = "r") -> ModelSQL:
    """The SQL of ``model`` over the ``readings`` row ``alias``."""
    return ModelSQL(model, lambda name: input_expr(name, alias))
