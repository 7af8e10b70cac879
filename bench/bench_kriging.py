"""Benchmark luftnett.mapping kriging against PyKrige, and the map targets of issue 8.

    python bench/bench_kriging.py            # writes its section of docs/benchmarks.md
    python bench/bench_kriging.py --no-write # prints only

1. Ordinary kriging, ours vs PyKrige's ``OrdinaryKriging`` (vectorized backend), on the same
   synthetic data with the same fixed variogram, n = 100, 300, 1000 observations predicted
   at a 100 x 100 grid: the largest absolute difference of predictions and standard errors,
   and wall time (build + predict, best of 3). Without PyKrige installed, the reference is
   a brute-force solve of the kriging system per location, in semivariogram form.
2. The issue's problem: 200 sensors with known noise, a 200 x 200 grid, variogram fitted,
   LOOCV and prediction, timed end to end (target < 2 s); accuracy against the known truth
   of IDW, OK, UK with the drift covariate (target: RMSE >= 20 % below IDW) and PyKrige OK.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import scipy

from luftnett.mapping.idw import Idw
from luftnett.mapping.kriging import Kriging, Prediction
from luftnett.mapping.variogram import VariogramModel

try:
    import pykrige
    from pykrige.ok import OrdinaryKriging
except ImportError:  # pragma: no cover - the fallback reference below is used
    pykrige = None

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench_kriging:start -->", "<!-- bench_kriging:end -->"
VGM = VariogramModel("exponential", nugget=0.1, psill=1.0, range_m=300.0)
SIDE_M = 1000.0
T = TypeVar("T")
U = TypeVar("U")


def best_of(fn: Callable[[], T], repeat: int = 3) -> tuple[float, T]:
    """Best wall time of ``repeat`` runs, and the last result."""
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def best_of_pair(
    fa: Callable[[], T], fb: Callable[[], U], repeat: int = 5
) -> tuple[float, T, float, U]:
    """Like :func:`best_of` for two functions run alternately, so both see the same load."""
    ta, ra = best_of(fa, 1)
    tb, rb = best_of(fb, 1)
    for _ in range(repeat - 1):
        ta = min(ta, best_of(fa, 1)[0])
        tb = min(tb, best_of(fb, 1)[0])
    return ta, ra, tb, rb


def background(xy: np.ndarray, seed: int = 1) -> np.ndarray:
    """A smooth random field: 40 random cosine waves with wavelengths of 150 m to 1 km."""
    rng = np.random.default_rng(seed)
    k = rng.uniform(2 * np.pi / 1000, 2 * np.pi / 150, 40)
    ang = rng.uniform(0, np.pi, 40)
    ph = rng.uniform(0, 2 * np.pi, 40)
    w = np.column_stack([k * np.cos(ang), k * np.sin(ang)])
    return np.asarray(np.sqrt(2 / 40) * np.cos(xy @ w.T + ph).sum(axis=1))


def road(xy: np.ndarray) -> np.ndarray:
    """Drift covariate: closeness to a road along y = 0.4 x + 300 (1 on it, 0 far away)."""
    d = np.abs(0.4 * xy[:, 0] - xy[:, 1] + 300) / np.hypot(0.4, 1.0)
    return np.asarray(np.exp(-d / 60.0))


def grid(m: int) -> np.ndarray:
    c = (np.arange(m) + 0.5) * SIDE_M / m
    gx, gy = np.meshgrid(c, c)
    return np.column_stack([gx.ravel(), gy.ravel()])


def brute_force_ok(xy: np.ndarray, z: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Textbook OK in semivariogram form, one location at a time (slow reference)."""
    n = len(z)
    a = np.ones((n + 1, n + 1))
    a[:n, :n] = VGM.semivariance(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)))
    a[n, n] = 0.0
    val, se = np.empty(len(at)), np.empty(len(at))
    for i, p in enumerate(at):
        b = np.ones(n + 1)
        b[:n] = VGM.semivariance(np.hypot(*(xy - p).T))
        sol = np.linalg.solve(a, b)
        val[i] = sol[:n] @ z
        se[i] = np.sqrt(max(float(sol @ b), 0.0))
    return val, se


def compare_ok(n: int, at: np.ndarray) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, SIDE_M, (n, 2))
    z = 10 + background(xy) + rng.normal(0, 0.3, n)

    def run_ours() -> Prediction:
        return Kriging(xy, z, VGM).predict(at)

    if pykrige is not None:
        params = {"psill": VGM.psill, "range": VGM.range_m, "nugget": VGM.nugget}

        def run_pk() -> tuple[np.ndarray, np.ndarray]:
            ok = OrdinaryKriging(xy[:, 0], xy[:, 1], z, "exponential", variogram_parameters=params)
            v, ss = ok.execute("points", at[:, 0], at[:, 1], backend="vectorized")
            return np.asarray(v), np.sqrt(np.clip(np.asarray(ss), 0, None))

        t_ours, ours, t_ref, ref = best_of_pair(run_ours, run_pk)
        name = f"PyKrige {pykrige.__version__}"
    else:
        sub = at[:: max(1, len(at) // 500)]  # the slow reference on a subset, timed per point
        t_ref, ref = best_of(lambda: brute_force_ok(xy, z, sub), repeat=1)
        t_ref *= len(at) / len(sub)
        t_ours, _ = best_of(run_ours)
        ours = Kriging(xy, z, VGM).predict(sub)
        name = "brute force (extrapolated time)"
    ref_v, ref_se = ref
    return {
        "n": n,
        "m": len(at),
        "ref": name,
        "dv": float(np.max(np.abs(ours.value - ref_v))),
        "dse": float(np.max(np.abs(ours.se - ref_se))),
        "t_ours": t_ours,
        "t_ref": t_ref,
    }


def issue_problem() -> dict[str, Any]:
    rng = np.random.default_rng(8)
    n = 200
    xy = rng.uniform(0, SIDE_M, (n, 2))
    sigma = rng.uniform(0.2, 0.6, n)  # per-sensor calibration uncertainty

    def truth(p: np.ndarray) -> np.ndarray:
        return np.asarray(10 + 1.5 * background(p) + 12 * road(p))

    z = truth(xy) + sigma * rng.standard_normal(n)
    at = grid(200)
    true_at = truth(at)
    rows: dict[str, tuple[float, float, float, float]] = {}

    def rmse(v: np.ndarray) -> float:
        return float(np.sqrt(np.mean((v - true_at) ** 2)))

    def run_idw() -> tuple[float, float]:
        m = Idw(xy, z, power=2.0, k=12)
        cv = m.loocv()
        return rmse(m.predict(at)), cv.rmse

    def run_ok() -> tuple[float, float]:
        k = Kriging.fit(xy, z, sigma=sigma)
        cv = k.loocv()
        return rmse(k.predict(at).value), cv.rmse

    def run_uk() -> tuple[float, float]:
        k = Kriging.fit(xy, z, sigma=sigma, covariates=road(xy))
        cv = k.loocv()
        return rmse(k.predict(at, road(at)).value), cv.rmse

    for name, fn in (("IDW (p=2, k=12)", run_idw), ("OK", run_ok), ("UK / KED (road)", run_uk)):
        t, (r, cv_r) = best_of(fn)
        rows[name] = (t, r, cv_r, np.nan)
    if pykrige is not None:

        def run_pk() -> float:
            ok = OrdinaryKriging(xy[:, 0], xy[:, 1], z, "exponential", nlags=15)
            v, _ = ok.execute("points", at[:, 0], at[:, 1], backend="vectorized")
            return rmse(np.asarray(v))

        t, r = best_of(run_pk)
        rows[f"PyKrige OK {pykrige.__version__} (own fit)"] = (t, r, np.nan, np.nan)
    return {"rows": rows, "n": n, "cells": len(at)}


def machine() -> list[str]:
    def sh(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return "?"

    cpu = "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    dirty = " (with uncommitted changes)" if sh("git", "status", "--porcelain") else ""
    versions = (
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}"
    )
    if pykrige is not None:
        versions += f", PyKrige {pykrige.__version__}"
    return [
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- commit: {sh('git', 'rev-parse', '--short', 'HEAD')}{dirty}",
        f"- machine: `{sh('uname', '-a')}`",
        f"- CPU: {cpu}, {sh('nproc')} cores",
        f"- {versions}",
    ]


def report(ok_rows: list[dict[str, Any]], issue: dict[str, Any]) -> str:
    out = [
        START,
        "## Kriging (bench/bench_kriging.py)",
        "",
        *machine(),
        "",
        "### Ordinary kriging: luftnett.mapping vs reference, same data and variogram",
        "",
        f"Exponential variogram (nugget {VGM.nugget}, psill {VGM.psill}, practical range "
        f"{VGM.range_m:g} m, which is PyKrige's exponential range), observations uniform "
        f"on {SIDE_M:g} m x {SIDE_M:g} m, predictions at a 100 x 100 grid; time = build + "
        "predict (value and se), best of 5 runs alternating with the reference. Both solve "
        "one global system with BLAS; on a 2-core machine shared with other jobs, repeated "
        "runs of this table vary by about +-50 %.",
        "",
        "| n | locations | reference | max abs diff value | max abs diff se | ours s | "
        "reference s | reference / ours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in ok_rows:
        out.append(
            f"| {r['n']} | {r['m']} | {r['ref']} | {r['dv']:.1e} | {r['dse']:.1e} | "
            f"{r['t_ours']:.3f} | {r['t_ref']:.3f} | {r['t_ref'] / r['t_ours']:.1f} |"
        )
    rows: dict[str, tuple[float, float, float, float]] = issue["rows"]
    idw_rmse = rows["IDW (p=2, k=12)"][1]
    out += [
        "",
        f"### Issue 8 problem: {issue['n']} sensors, a 200 x 200 grid ({issue['cells']} cells)",
        "",
        "Truth = 10 + 1.5 x smooth random field + 12 x closeness to a road; each sensor adds "
        "noise with its own sigma in 0.2..0.6, given to kriging. Time = fit (variogram) + "
        "LOOCV + grid prediction with se, best of 3 (target < 2 s). RMSE against the truth "
        "on every cell (target for UK: at least 20 % below IDW).",
        "",
        "| method | time s | RMSE vs truth | vs IDW | LOOCV RMSE |",
        "|---|---|---|---|---|",
    ]
    for name, (t, err, cv_r, _) in rows.items():
        cv_text = "-" if np.isnan(cv_r) else f"{cv_r:.3f}"
        out.append(
            f"| {name} | {t:.2f} | {err:.3f} | {100 * (err / idw_rmse - 1):+.0f} % | {cv_text} |"
        )
    out += ["", END]
    return "\n".join(out) + "\n"


def write_section(text: str) -> None:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    doc = (
        DOC.read_text(encoding="utf-8")
        if DOC.exists()
        else "# Benchmarks\n\nWritten by the scripts in `bench/`.\n"
    )
    if START in doc and END in doc:
        head, rest = doc.split(START, 1)
        doc = head + text.rstrip("\n") + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    DOC.write_text(doc, encoding="utf-8")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Without --no-write it replaces its section of docs/benchmarks.md.",
    )
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    if pykrige is None:
        print(
            "PyKrige is not installed: comparing against a brute-force reference", file=sys.stderr
        )
    at = grid(100)
    ok_rows = []
    for n in (100, 300, 1000):
        r = compare_ok(n, at)
        print(r, file=sys.stderr)
        ok_rows.append(r)
    issue = issue_problem()
    text = report(ok_rows, issue)
    print(text)
    if not args.no_write:
        write_section(text)
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
