"""`luftnett calibrate`: bad input is one stderr line and exit 1; output shapes are stable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from luftnett.calibration.model import CalibrationModel
from luftnett.cli import main


@pytest.fixture
def colo_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    ref = rng.uniform(2, 40, 200)
    rh = rng.uniform(20, 95, 200)
    sen = 1.4 * ref + 0.05 * rh + 1 + rng.normal(0, 1, 200)
    lines = ["ts,ref,sen,rh"]
    for i, (a, b, c) in enumerate(zip(ref, sen, rh, strict=True)):
        lines.append(f"2024-01-{1 + i // 24:02d}T{i % 24:02d}:00:00Z,{a:.3f},{b:.3f},{c:.1f}")
    lines.append("2024-02-01T00:00:00Z,,5.0,50")  # a missing reference value
    path = tmp_path / "colo.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, ["calibrate", *args])
    return res.exit_code, res.stdout, res.stderr


def test_json_has_the_documented_keys(colo_csv: Path) -> None:
    code, out, _ = _run(
        "evaluate", "--csv", str(colo_csv), "--reference", "ref", "--sensor", "sen",
        "--time", "ts", "--limit", "20", "--json",
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    for key in ("n", "rmse", "mbe", "mae", "r", "r2", "ols_slope", "ols_intercept",
                "orthogonal_slope", "orthogonal_intercept", "reu_pct"):  # fmt: skip
        assert isinstance(doc[key], int | float), key
    assert doc["rows_dropped"] == 1
    assert doc["n"] + doc["n_train"] == 200
    assert doc["model"]["family"] == "linear"


@pytest.mark.parametrize("model", ["linear", "multilinear", "robust", "epa-pa", "kohler"])
def test_every_model_runs(colo_csv: Path, model: str) -> None:
    code, out, err = _run(
        "evaluate", "--csv", str(colo_csv), "--reference", "ref", "--sensor", "sen",
        "--rh", "rh", "--model", model, "--pollutant", "pm25",
    )  # fmt: skip
    assert code == 0, err
    assert "US-EPA 2021 targets" in out
    assert "CEN/TS 17660 class" in out


def test_fit_writes_a_loadable_model(colo_csv: Path, tmp_path: Path) -> None:
    out_path = tmp_path / "m.json"
    code, _, err = _run(
        "fit", "--csv", str(colo_csv), "--reference", "ref", "--sensor", "sen",
        "--covariates", "rh", "--model", "multilinear", "--time", "ts", "--out", str(out_path),
    )  # fmt: skip
    assert code == 0, err
    model = CalibrationModel.from_json(out_path.read_text())
    assert model.model_id in err
    assert model.terms == ("intercept", "sensor", "rh")
    assert model.trained_from == "2024-01-01T00:00:00+00:00"
    code, out, _ = _run("fit", "--csv", str(colo_csv), "--reference", "ref", "--sensor", "sen")
    assert code == 0
    assert json.loads(out)["family"] == "linear"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--csv", "/no/such.csv"], "no such file: /no/such.csv", id="missing-file"),
        pytest.param(
            ["--reference", "NO2"], "no column 'NO2'; available: ts, ref, sen, rh", id="bad-column"
        ),
        pytest.param(["--model", "kohler"], "--model kohler needs --rh", id="kohler-without-rh"),
        pytest.param(["--split-at", "2024-01-05"], "--split-at needs --time", id="split-no-time"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(colo_csv: Path, args: list[str], message: str) -> None:
    base = {"--csv": str(colo_csv), "--reference": "ref", "--sensor": "sen"}
    extra: list[str] = []
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag in base:
            base[flag] = value
        else:
            extra += [flag, value]
    argv = [x for kv in base.items() for x in kv] + extra
    code, out, err = _run("evaluate", *argv)
    assert code == 1
    assert err.strip() == f"error: {err.strip().removeprefix('error: ')}"
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err + out


def test_non_numeric_and_all_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ref,sen\n1,2\n2,3\n3,x4\n")
    code, _, err = _run("evaluate", "--csv", str(bad), "--reference", "ref", "--sensor", "sen")
    assert code == 1
    assert "line 4, column 'sen': 'x4' is not a number" in err
    empty = tmp_path / "empty.csv"
    empty.write_text("ref,sen\n1,NA\n2,\n3,NaN\n")
    code, _, err = _run("evaluate", "--csv", str(empty), "--reference", "ref", "--sensor", "sen")
    assert code == 1
    assert "0 complete rows of 3 (missing values per column: ref 0, sen 3)" in err


def test_singular_design_is_reported(tmp_path: Path) -> None:
    flat = tmp_path / "flat.csv"
    flat.write_text("ref,sen\n" + "".join(f"{i},5\n" for i in range(20)))
    code, _, err = _run("evaluate", "--csv", str(flat), "--reference", "ref", "--sensor", "sen")
    assert code == 1
    assert "singular design" in err


def test_tampered_model_file_is_refused(colo_csv: Path, tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    _run("fit", "--csv", str(colo_csv), "--reference", "ref", "--sensor", "sen", "--out", str(path))
    doc = json.loads(path.read_text())
    doc["coefficients"]["sensor"] *= 2
    path.write_text(json.dumps(doc))
    code, _, err = _run(
        "evaluate", "--csv", str(colo_csv), "--reference", "ref", "--sensor", "sen",
        "--model-file", str(path),
    )  # fmt: skip
    assert code == 1
    assert "does not match the content" in err
