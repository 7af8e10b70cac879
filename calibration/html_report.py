"""An HTML report of one calibration version: metrics table and four PNG plots, each with a
short plain-language explanation (matplotlib, Agg backend; written to a directory).
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from luftnett.calibration.colocation import Pairs
from luftnett.calibration.evaluate import Evaluation
from luftnett.calibration.store import Version
from luftnett.calibration.targets import CEN_THRESHOLDS_PCT
from luftnett.errors import ConfigError

__all__ = ["write_report"]

BoolArray = npt.NDArray[np.bool_]

_CSS = """body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th:first-child,td:first-child{text-align:left}figure{margin:2em 0}
img{max-width:100%}.note{color:#555}.ok{color:#070}.bad{color:#a00}"""


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def _plots(
    out: Path, version: Version, ev: Evaluation, pairs: Pairs, train: BoolArray, unit: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = version.model
    cov = {k: v for k, v in pairs.covariates().items() if k in model.inputs}
    cal = model.apply(pairs.sensor, cov)
    test = ~train
    ref, raw, y, u = pairs.reference, pairs.sensor, cal.value, cal.u
    # naive UTC for numpy (aware datetimes warn); the axis says UTC
    hours = np.array([h.astimezone(UTC).replace(tzinfo=None) for h in pairs.hours],
                     dtype="datetime64[s]")  # fmt: skip

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(ref[test], raw[test], s=6, alpha=0.4, label="raw sensor", color="#999")
    ax.scatter(ref[test], y[test], s=6, alpha=0.6, label="calibrated", color="#1f77b4")
    hi = float(np.nanmax([ref.max(), raw.max(), y.max()])) if ref.size else 1.0
    ax.plot([0, hi], [0, hi], "k--", lw=1, label="1:1 (perfect agreement)")
    ax.set_xlabel(f"reference ({unit})")
    ax.set_ylabel(f"sensor ({unit})")
    ax.legend()
    ax.set_title("Hold-out hours: sensor against reference")
    fig.tight_layout()
    fig.savefig(out / "scatter.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(hours, ref, color="k", lw=1, label="reference")
    ax.plot(hours, raw, color="#999", lw=0.8, label="raw sensor")
    ax.plot(hours, y, color="#1f77b4", lw=1, label="calibrated")
    ax.fill_between(hours, y - 2 * u, y + 2 * u, color="#1f77b4", alpha=0.15, label="±2u")
    if train.any() and test.any():
        ax.axvline(hours[np.flatnonzero(test)[0]], color="#d62728", ls=":", label="hold-out starts")
    ax.set_ylabel(unit)
    ax.set_xlabel("time (UTC)")
    ax.legend(ncol=5, fontsize="small")
    ax.set_title("Time series (training period, then hold-out)")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out / "timeseries.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    mean = (y[test] + ref[test]) / 2
    diff = y[test] - ref[test]
    bias, sd = float(np.mean(diff)), float(np.std(diff, ddof=1)) if diff.size > 1 else 0.0
    ax.scatter(mean, diff, s=6, alpha=0.5)
    ax.axhline(bias, color="k", label=f"mean difference {bias:.2f}")
    for k in (-1.96, 1.96):
        ax.axhline(bias + k * sd, color="k", ls="--", lw=0.8)
    ax.set_xlabel(f"mean of calibrated and reference ({unit})")
    ax.set_ylabel(f"calibrated − reference ({unit})")
    ax.legend()
    ax.set_title("Bland–Altman (hold-out)")
    fig.tight_layout()
    fig.savefig(out / "bland_altman.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ev.curve_concentrations, ev.curve_reu_pct, color="#1f77b4", label="REU")
    c1, c2 = CEN_THRESHOLDS_PCT.get(version.pollutant, (float("nan"), float("nan")))
    ax.axhline(c1, color="#2ca02c", ls="--", label=f"class 1 (indicative) ≤ {c1:g} %")
    ax.axhline(c2, color="#ff7f0e", ls="--", label=f"class 2 ≤ {c2:g} %")
    if ev.reu is not None:
        ax.axvline(ev.reu.limit, color="k", ls=":", label=f"limit value {ev.reu.limit:.3g}")
    ax.set_ylim(0, max(200.0, c2 * 1.3))
    ax.set_xlabel(f"concentration ({unit})")
    ax.set_ylabel("relative expanded uncertainty (%)")
    ax.legend(fontsize="small")
    ax.set_title("Uncertainty across concentrations")
    fig.tight_layout()
    fig.savefig(out / "reu_curve.png", dpi=100)
    plt.close(fig)


def write_report(
    out: Path,
    version: Version,
    ev: Evaluation,
    pairs: Pairs,
    train: BoolArray,
    attribution: str | None = None,
    now: datetime | None = None,
) -> Path:
    """Write ``index.html`` and the PNGs into ``out`` (created); return the HTML path."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {out}: {exc.strerror}") from exc
    unit = version.model.unit
    _plots(out, version, ev, pairs, train, unit)
    raw, cal = ev.raw.as_dict(), ev.calibrated.as_dict()
    rows = [
        ("n", "hours compared"),
        ("rmse", "typical error (root mean square), lower is better"),
        ("mbe", "average bias: positive means the sensor reads high"),
        ("mae", "average size of the error"),
        ("r2", "how well the ups and downs agree (1 = perfectly)"),
        ("ols_slope", "slope against the reference (1 = right scale)"),
        ("ols_intercept", "offset at zero"),
    ]
    table = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{_fmt(raw[k])}</td><td>{_fmt(cal[k])}</td></tr>"
        for k, label in rows
    )
    reu = ev.reu
    verdict = ""
    if reu is not None:
        cls = ev.cen_class
        verdict = (
            f"<p>At the limit value of {reu.limit:.3g} {html.escape(unit)} the relative expanded "
            f"uncertainty is <b>{reu.reu_pct:.0f} %</b>: CEN/TS 17660 class <b>{cls}</b> "
            "(class 1 is good enough for indicative measurements, class 2 for objective "
            "estimation, class 3 for neither).</p>"
        )
    if ev.epa is not None:
        ok = all(c.passed for c in ev.epa)
        verdict += (
            f"<p>US-EPA 2021 sensor targets: <b class={'ok' if ok else 'bad'}>"
            f"{'pass' if ok else 'fail'}</b>"
            f"{' (provisional NO2 targets)' if ev.epa_provisional else ''}.</p>"
        )
    m = version.model
    status = html.escape(version.status) + (
        f" — {html.escape(version.status_reason)}" if version.status_reason else ""
    )
    figures = [
        ("scatter.png", "Calibrated and raw against the reference",
         "Each dot is one hour of the hold-out period. Dots on the dashed line mean the sensor "
         "agrees with the reference; grey dots are the raw sensor, blue ones after calibration."),
        ("timeseries.png", "Over time",
         "The three series over the whole campaign. The model learnt from the part left of the "
         "red line and was judged on the part right of it. The shaded band is ±2 standard "
         "uncertainties: the reference should mostly fall inside it."),
        ("bland_altman.png", "Bland–Altman: the errors",
         "The vertical distance of each dot from zero is the error of one hour. The solid line "
         "is the average error (bias); about 95 % of hours fall between the dashed lines. A "
         "slope in the cloud means the error grows with concentration."),
        ("reu_curve.png", "Uncertainty curve (REU)",
         "How uncertain a single hourly value is, in percent, at each concentration. It is "
         "always large near zero; what matters is the value at the limit value (dotted line) "
         "compared with the class lines."),
    ]  # fmt: skip
    figs = "".join(
        f'<h3>{html.escape(title)}</h3><figure><img src="{f}" alt="{html.escape(title)}">'
        f'<figcaption class="note">{html.escape(t)}</figcaption></figure>'
        for f, title, t in figures
    )
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Calibration version {version.version_id}</title><style>{_CSS}</style></head><body>
<h1>Calibration version {version.version_id}: {html.escape(version.device_id or "")}
{html.escape(version.pollutant.upper())}</h1>
<p>Model <code>{html.escape(m.model_id)}</code>
({html.escape(m.family)}, {html.escape(m.fit_method)}),
fitted against reference station <b>{html.escape(version.reference_station_id or "")}</b> on
{_fmt(version.trained_from)} … {_fmt(version.trained_to)}; judged on the hours after that up to
{_fmt(version.evaluated_to)}. Created {_fmt(version.created_at)}
by {html.escape(version.created_by)}.
Status: {status}.</p>
<h2>How good is it?</h2>{verdict}
<table><tr><th>hold-out metric</th><th>raw sensor</th><th>calibrated</th></tr>{table}</table>
<p class="note">Units: {html.escape(unit)}. Metrics use only hours the model did not learn from.
Each calibrated value also carries its own standard uncertainty u; on these hours
{ev.coverage_pct:.0f} % of errors were within ±2u (about 95 % is expected).</p>
{figs}
<p class="note">{html.escape(attribution or "")}</p>
<p class="note">Generated by luftnett{f" on {now:%Y-%m-%d %H:%M} UTC" if now else ""}.</p>
</body></html>
"""
    path = out / "index.html"
    path.write_text(body, encoding="utf-8")
    return path
