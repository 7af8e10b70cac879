"""Profiles, index classes, the invalidating mask and API keys, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from luftnett.api.deps import key_ok
from luftnett.api.profiles import load_profiles
from luftnett.api.quality import INVALID_MASK, flag_names
from luftnett.contracts.units import INVALIDATING_FLAGS, ReadingFlag
from luftnett.settings import ApiSettings, Settings

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "limits" / "limits.json"


def test_packaged_limits_equal_the_shared_file() -> None:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} not beside the repository")
    packaged = json.loads((REPO / "api" / "data" / "limits.json").read_text("utf-8"))
    assert packaged == json.loads(SHARED.read_text("utf-8")), (
        "api/data/limits.json differs from shared/limits/limits.json: copy it again"
    )


def test_profiles_come_from_the_data_files() -> None:
    p = load_profiles()
    assert set(p.profiles) == {
        "eu-2008-50",
        "eu-2024-2881",
        "who-2021",
        "no-forurensningsforskriften-ch7",
    }
    eu = p.get("eu-2008-50")
    pm10 = [e for e in eu.entries if e.pollutant == "PM10" and e.averaging_period == "24h"]
    assert [(e.value_ugm3, e.allowed_exceedances_per_year) for e in pm10] == [(50.0, 35)]
    assert all(e.source_url.startswith("http") for e in eu.entries)
    who_day = [e for e in p.get("who-2021").entries if e.averaging_period == "24h"]
    assert {e.allowed_exceedances_per_year for e in who_day} == {3}
    assert all(e.allowed_source for e in who_day)
    assert p.get("no-forurensningsforskriften-ch7").validity.year_min_coverage_pct == 85
    assert p.factor_to_ugm3 == {"no2_ppb": 1.9125}


@pytest.mark.parametrize(
    ("pollutant", "value", "label"),
    [
        pytest.param("PM2.5", 0.0, "Lite", id="zero"),
        pytest.param("PM2.5", 29.99, "Lite", id="below-30"),
        pytest.param("PM2.5", 30.0, "Moderat", id="at-30-is-moderat"),
        pytest.param("PM2.5", 150.0, "Svært høy", id="open-top"),
        pytest.param("NO2", 200.0, "Høy", id="no2-200"),
    ],
)
def test_index_classes(pollutant: str, value: float, label: str) -> None:
    c = load_profiles().classify(pollutant, value)
    assert c is not None and c.label_no == label


def test_unknown_profile_names_the_known_ones() -> None:
    from luftnett.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown profile 'x'; use one of: eu-2008-50"):
        load_profiles().get("x")


def test_mask_is_the_registry_s() -> None:
    assert int(INVALIDATING_FLAGS) == INVALID_MASK
    assert flag_names(int(ReadingFlag.WARMING_UP | ReadingFlag.SPIKE)) == ["warming_up", "spike"]


def test_api_keys_compare() -> None:
    s = Settings(api=ApiSettings(api_keys=[SecretStr("k1"), SecretStr("k2")]))
    assert key_ok(s, "k2")
    assert not key_ok(s, "k3")
    assert not key_ok(s, "")
    assert not key_ok(s, None)
