"""Pieces of calibration-in-the-system that need no database: reference parsing (CSV and the
recorded NILU responses), fleet defaults, drift indicators."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from luftnett.calibration.drift import assess_drift, rolling_ratio
from luftnett.calibration.fit import BARKJOHN_2021
from luftnett.calibration.fleet import FLEET_DEFAULTS, fleet_default
from luftnett.calibration.model import CalibrationModel
from luftnett.calibration.reference import (
    ReferenceDataError,
    parse_nilu_historical,
    parse_nilu_stations,
    read_reference_csv,
    to_luftnett_unit,
)

NILU = Path(__file__).resolve().parents[1] / "data" / "nilu"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_reference_csv_converts_units_and_defaults_to_provisional() -> None:
    text = (
        "time,pollutant,value,unit,status\n"
        "2024-01-01T00:00:00Z,pm25,8.5,µg/m³,validated\n"
        "2024-01-01T01:00:00+01:00,NO2,38.2,ug/m3,\n"
        "2024-01-01T01:00:00Z,no2,,ppb,\n"
        ",,,,\n"
    )
    obs = read_reference_csv(io.StringIO(text), "x.csv")
    assert [(o.pollutant, o.hour_start, o.status) for o in obs] == [
        ("pm25", T0, "validated"),
        ("no2", T0, "provisional"),
    ]
    assert_allclose(obs[1].value, 38.2 / 1.91, rtol=1e-12)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param("2024-01-01T00:00:00,pm25,1,ugm3", "no UTC offset", id="naive-time"),
        pytest.param("2024-01-01T00:30:00Z,pm25,1,ugm3", "start of an hour", id="half-hour"),
        pytest.param("2024-01-01T00:00:00Z,co,1,ppb", "unknown pollutant", id="pollutant"),
        pytest.param("2024-01-01T00:00:00Z,pm25,1,ppb", "µg/m³", id="pm-in-ppb"),
        pytest.param("2024-01-01T00:00:00Z,pm25,x,ugm3", "not a number", id="value"),
    ],
)
def test_reference_csv_errors_name_the_line(line: str, message: str) -> None:
    with pytest.raises(ReferenceDataError, match=message) as err:
        read_reference_csv(io.StringIO(f"time,pollutant,value,unit\n{line}\n"), "r.csv")
    assert "r.csv line 2" in str(err.value)


def test_reference_csv_needs_its_columns() -> None:
    with pytest.raises(ReferenceDataError, match="missing column"):
        read_reference_csv(io.StringIO("when,value\n"), "r.csv")


def test_units() -> None:
    assert to_luftnett_unit("o3", 100.0, "µg/m³") == pytest.approx(50.0)
    assert to_luftnett_unit("no2", 10.0, "ppb") == 10.0


def test_nilu_recorded_lookup_and_historical() -> None:
    stations = parse_nilu_stations(json.loads((NILU / "lookup_stations.json").read_text()))
    kv = next(s for s in stations if s.name == "Kirkeveien")
    assert kv.station_id == "NO0083A"
    assert set(kv.pollutants) == {"no2", "pm10", "pm25"}
    doc = json.loads((NILU / "historical_kirkeveien.json").read_text())
    station, obs = parse_nilu_historical(doc)
    assert station is not None
    assert station.station_id == "NO0083A"
    assert station.pollutants == ("pm25", "no2")
    assert len(obs) == 11  # 6 PM2.5 + 5 NO2 (one null); NOx ignored
    assert obs[0].hour_start == T0


def test_nilu_malformed_response_is_an_error() -> None:
    with pytest.raises(ReferenceDataError, match="expected a JSON list"):
        parse_nilu_historical({"errors": ["bad station"]})


def test_fleet_defaults_round_trip_and_cover_the_drivers() -> None:
    assert {k[0] for k in FLEET_DEFAULTS} >= {"sds011", "pms5003", "pms7003", "sps30", "dgs-no2"}
    for d in FLEET_DEFAULTS.values():
        assert CalibrationModel.from_json(d.model.to_json()) == d.model
        assert d.model.residual_sd > 0
    pa = fleet_default("pms5003", "pm25")
    assert pa is not None
    out = pa.model.apply([20.0], {"rh_pct": [50.0]})
    c = BARKJOHN_2021
    assert_allclose(out.value, [c["intercept"] + c["sensor"] * 20 + c["rh"] * 50], rtol=1e-12)
    # honestly larger than the paper's 3 µg/m³ (24-h) and growing with concentration
    assert out.u[0] > 5.0
    assert pa.model.apply([200.0], {"rh_pct": [50.0]}).u[0] > out.u[0]
    assert fleet_default("sds011", "o3") is None


def _hours(n: int) -> list[datetime]:
    return [T0 + timedelta(hours=i) for i in range(n)]


def test_drift_flags_a_sensitivity_change_and_not_a_stable_sensor() -> None:
    rng = np.random.default_rng(3)
    n = 24 * 42
    ref = 10 + 5 * np.sin(np.arange(n) * 2 * np.pi / 24) + rng.normal(0, 1, n)
    stable = 1.5 * ref + rng.normal(0, 0.5, n)
    gain = np.linspace(1.5, 1.0, n)  # loses a third of its sensitivity over six weeks
    drifting = gain * ref + rng.normal(0, 0.5, n)
    ok = assess_drift(_hours(n), stable, ref)
    bad = assess_drift(_hours(n), drifting, ref)
    assert not ok.flagged, ok.reasons
    assert abs(ok.ratio_change_pct or 0) < 5
    assert bad.flagged
    assert bad.ratio_change_pct is not None
    assert bad.ratio_change_pct < -20
    assert bad.trend_pct_per_30d is not None
    assert bad.trend_pct_per_30d < 0


def test_drift_flags_a_creeping_offset() -> None:
    n = 24 * 35
    ref = np.full(n, 20.0)
    sensor = 20.0 + np.arange(n) / 24 * 0.3  # +0.3 per day: +45 % of the level per 30 days
    a = assess_drift(_hours(n), sensor, ref)
    assert a.flagged
    assert a.trend_pct_per_30d == pytest.approx(45.0, rel=1e-6)


def test_rolling_ratio_needs_enough_hours() -> None:
    n = 24 * 3
    x = np.ones(n)
    assert rolling_ratio(_hours(n), x, x, window_days=7) == []
    assert assess_drift([], np.array([]), np.array([])).flagged is False


def test_drift_verdict_is_ok_only_with_an_indicator() -> None:
    """ "ok" means compared and within the threshold; no pairs is "no data", too few hours for
    either indicator is "unknown" (QA saw "ok ... no comparison data")."""
    from luftnett.calibration.drift_db import DeviceDrift

    n = 24 * 21
    ref = 10 + 5 * np.sin(np.arange(n) * 2 * np.pi / 24)
    compared = assess_drift(_hours(n), 1.5 * ref, ref)
    few = assess_drift(_hours(24), np.ones(24), np.ones(24))
    empty = assess_drift(_hours(24), np.ones(24), np.full(24, np.nan))
    assert few.n_pairs == 24
    assert few.ratio_change_pct is None
    assert few.trend_pct_per_30d is None

    def verdict(ref_a: object, nb_a: object) -> str:
        return DeviceDrift("d", None, None, 0, ref_a, nb_a).verdict  # type: ignore[arg-type]

    assert verdict(None, None) == "no data"
    assert verdict(empty, None) == "no data"
    assert verdict(few, empty) == "unknown"
    assert verdict(compared, few) == "ok"
    drifting = assess_drift(_hours(n), np.linspace(1.5, 1.0, n) * ref, ref)
    assert verdict(few, drifting) == "DRIFT"
