"""Plain-text evaluation report for the terminal (the CLI prints it; --json bypasses it)."""

from __future__ import annotations

import math

from luftnett.calibration.evaluate import Evaluation
from luftnett.calibration.model import CalibrationModel
from luftnett.calibration.table import Table

__all__ = ["text_report"]


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:.0f}"


def _formula(model: CalibrationModel, reference: str) -> str:
    c = model.coefficient_map
    if model.family == "kohler":
        return (
            f"{reference} = {c['intercept']:.4g} + {c['slope']:.4g}·{model.sensor}"
            f" / (1 + {c['kappa']:.3g}·aw/(1−aw)),  aw = {model.rh}/100"
        )
    parts = [f"{c['intercept']:.4g}"]
    for term, v in c.items():
        if term == "intercept":
            continue
        name = model.sensor if term == "sensor" else term
        parts.append(f"{'−' if v < 0 else '+'} {abs(v):.4g}·{name}")
    return f"{reference} = " + " ".join(parts)


def text_report(
    table: Table,
    source: str,
    sensor: str,
    reference: str,
    ev: Evaluation,
    n_train: int,
    split_desc: str,
    unit: str,
) -> str:
    """The human-readable evaluation: rows, split, model, metrics table, REU, targets."""
    t = table
    m = ev.model
    miss = ", ".join(f"{c} {n}" for c, n in t.missing.items() if n)
    lines = [
        f"{source}: {sensor} against {reference}",
        f"rows: {t.rows_read} read, {t.rows_dropped} dropped (missing: {miss or 'none'})",
        (
            f"train: {n_train} rows ({split_desc}"
            + (f", {m.trained_from} … {m.trained_to}" if m.trained_from else "")
            + f"), test: {ev.calibrated.n} rows"
        )
        if n_train
        else f"saved model trained on {m.n_train} rows"
        + (f" ({m.trained_from} … {m.trained_to})" if m.trained_from else "")
        + f"; test: all {ev.calibrated.n} rows",
        f"model {m.model_id} ({m.fit_method}): {_formula(m, reference)}",
        f"  residual sd {_fmt(m.residual_sd)}; mean u on test {_fmt(ev.mean_u)},"
        f" |error| ≤ 2u for {ev.coverage_pct:.0f} % of test rows",
        "",
        f"{'test metric':<22}{'raw':>12}{'calibrated':>12}",
    ]
    raw, cal = ev.raw.as_dict(), ev.calibrated.as_dict()
    labels = {
        "n": "n", "rmse": "RMSE", "mbe": "MBE", "mae": "MAE", "nrmse_pct": "NRMSE %", "r": "r",
        "r2": "R²", "ols_slope": "OLS slope", "ols_intercept": "OLS intercept",
        "orthogonal_slope": "orthogonal slope", "orthogonal_intercept": "orthogonal intercept",
    }  # fmt: skip
    for key, label in labels.items():
        lines.append(f"{label:<22}{_fmt(raw[key]):>12}{_fmt(cal[key]):>12}")
    u = f" {unit}" if unit else ""
    if ev.reu is not None:
        r = ev.reu
        lines += [
            "",
            f"REU at L = {r.limit:.4g}{u}: {r.reu_pct:.1f} % (GDE 2010: orthogonal b1 "
            f"{r.slope:.3f}, b0 {r.intercept:.3f}, random {math.sqrt(r.random_var):.3g}, "
            f"bias at L {r.bias_at_limit:.3g}, k = 2)",
        ]
    curve = ", ".join(
        f"{c:.3g}: {w:.0f} %"
        for c, w in list(zip(ev.curve_concentrations, ev.curve_reu_pct, strict=True))[::4]
    )
    lines.append(f"REU curve{u and ' (' + unit + ')'}: {curve}")
    if ev.epa is not None:
        verdict = "PASS" if all(c.passed for c in ev.epa) else "FAIL"
        if ev.epa_provisional:
            verdict += " (provisional targets, see docs/calibration.md)"
        checks = "; ".join(
            f"{c.name} {_fmt(c.value)} ({c.target}) {'ok' if c.passed else 'no'}" for c in ev.epa
        )
        lines.append(f"US-EPA 2021 targets: {verdict} — {checks}")
    if ev.cen_class is not None:
        lines.append(f"CEN/TS 17660 class implied by the REU: {ev.cen_class}")
    return "\n".join(lines)
