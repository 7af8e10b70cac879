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


def test_seed_must_not_be_negative(colo_csv: Path) -> None:
    code, out, err = _run(
        "evaluate", "--csv", str(colo_csv), "--reference", "ref", "--sensor", "sen",
        "--split", "random", "--seed", "-1",
    )  # fmt: skip
    assert code == 2
    assert "Invalid value for '--seed': -1 is not in the range x>=0" in err
    assert "Traceback" not in out + err


def test_split_at_is_read_with_the_time_format(tmp_path: Path) -> None:
    lines = ["when,ref,sen"] + [f"{d:02d}.01.2024 {h:02d}:00,{d + h},{2 * (d + h) + 1}"
                                for d in (4, 5, 6) for h in (0, 12)]  # fmt: skip
    path = tmp_path / "nor.csv"
    path.write_text("\n".join(lines) + "\n")
    base = ["evaluate", "--csv", str(path), "--reference", "ref", "--sensor", "sen",
            "--time", "when", "--time-format", "%d.%m.%Y %H:%M", "--json"]  # fmt: skip
    code, out, err = _run(*base, "--split-at", "05.01.2024 12:00")
    assert code == 0, err
    assert json.loads(out)["n_train"] == 3
    code, out, err = _run(*base, "--split-at", "2024-01-05T12:00")  # ISO still works
    assert code == 0, err
    assert json.loads(out)["n_train"] == 3
    code, _, err = _run(*base, "--split-at", "5/1/2024")
    assert code == 1
    assert (
        "--split-at: cannot read '5/1/2024'; give it in --time-format '%d.%m.%Y %H:%M' or "
        "as ISO 8601" in err
    )


@pytest.mark.parametrize(
    ("model", "args", "warned"),
    [
        pytest.param("linear", ["--covariates", "rh"], "--covariates rh is ignored by --model "
                     "linear; multilinear, mlr, robust use it", id="covariates-linear"),
        pytest.param("linear", ["--abs-humidity"], "--abs-humidity is ignored by --model linear",
                     id="abs-humidity-linear"),
        pytest.param("linear", ["--rh", "rh"], "--rh rh is ignored by --model linear",
                     id="rh-linear"),
        pytest.param("epa-pa", ["--rh", "rh", "--covariates", "ts"],
                     "--covariates ts is ignored by --model epa-pa", id="covariates-epa"),
    ],
)  # fmt: skip
def test_options_the_model_ignores_are_named(
    colo_csv: Path, model: str, args: list[str], warned: str
) -> None:
    for cmd in ("evaluate", "fit"):
        code, _, err = _run(cmd, "--csv", str(colo_csv), "--reference", "ref", "--sensor", "sen",
                            "--model", model, *args)  # fmt: skip
        assert code == 0, err
        assert f"warning: {warned}" in err, cmd


def test_options_a_model_uses_are_not_warned_about(colo_csv: Path) -> None:
    code, _, err = _run("evaluate", "--csv", str(colo_csv), "--reference", "ref", "--sensor",
                        "sen", "--model", "multilinear", "--covariates", "rh")  # fmt: skip
    assert code == 0, err
    assert "warning" not in err


def test_too_small_a_training_part_says_so(tmp_path: Path) -> None:
    path = tmp_path / "four.csv"
    path.write_text("ref,sen\n1,2\n2,4.1\n3,6\n4,8.2\n")
    code, _, err = _run("evaluate", "--csv", str(path), "--reference", "ref", "--sensor", "sen")
    assert code == 1
    assert (
        "the training part has only 2 complete pairs (train: first 50%); four.csv has 4 "
        "complete rows of 4" in err
    )
    code, _, err = _run("evaluate", "--csv", str(path), "--reference", "ref", "--sensor", "sen",
                        "--train-fraction", "0.75")  # fmt: skip
    assert code == 1
    assert "the test part has only 1 complete pair (train: first 75%)" in err


def test_a_directory_is_not_a_missing_file(tmp_path: Path) -> None:
    code, out, err = _run("evaluate", "--csv", str(tmp_path), "--reference", "a", "--sensor", "b")
    assert code == 1
    assert f"error: {tmp_path} is a directory, not a file" in err
    assert "Traceback" not in out + err


def test_a_utf16_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes("ref,sen\n1,2\n".encode("utf-16"))
    code, _, err = _run("evaluate", "--csv", str(path), "--reference", "ref", "--sensor", "sen")
    assert code == 1
    assert "u16.csv is not UTF-8 text" in err
    assert len(err.strip().splitlines()) == 1


def test_fit_device_says_it_ignores_csv_covariates() -> None:
    """Printed before the database is asked for (none here)."""
    res = CliRunner().invoke(
        main,
        ["calibrate", "fit", "--device", "d", "--reference", "S", "--from", "2024-01-01",
         "--to", "2024-01-02", "--covariates", "O3", "--abs-humidity"],
        env={"LUFTNETT_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"},
    )  # fmt: skip
    assert "warning: --covariates, --abs-humidity ignored with --device" in res.stderr
