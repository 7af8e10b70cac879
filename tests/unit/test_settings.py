from __future__ import annotations

from pathlib import Path

import pytest

from luftnett.errors import ConfigError
from luftnett.settings import DEMO_API_KEY, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for k in list(os.environ):
        if k.startswith("LUFTNETT_"):
            monkeypatch.delenv(k)


def test_defaults_run_the_demo_on_a_laptop() -> None:
    s = load_settings()
    assert s.database_url is None and s.mqtt_url is None
    assert s.api.host == "127.0.0.1"
    assert s.mqtt.qos == 1


def test_env_overrides_file_and_nesting_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "luftnett.toml"
    cfg.write_text('log_level = "DEBUG"\n[collector]\nbatch_size = 100\n[edge]\nwindow_s = 30\n')
    monkeypatch.setenv("LUFTNETT_COLLECTOR__BATCH_SIZE", "250")
    s = load_settings(cfg)
    assert s.collector.batch_size == 250  # environment beats the file
    assert s.edge.window_s == 30  # the file beats the defaults
    assert s.log_level == "DEBUG"


def test_bad_values_name_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUFTNETT_DATABASE_URL", "localhost")
    with pytest.raises(ConfigError, match="database_url"):
        load_settings()
    monkeypatch.delenv("LUFTNETT_DATABASE_URL")
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[edge\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_production_refuses_the_demo_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUFTNETT_ENV", "production")
    monkeypatch.setenv("LUFTNETT_DATABASE_URL", "postgresql://db/luftnett")
    with pytest.raises(ConfigError, match="LUFTNETT_API__API_KEYS"):
        load_settings()
    monkeypatch.setenv("LUFTNETT_API__API_KEYS", '["a-long-secret-key"]')
    s = load_settings()
    assert [k.get_secret_value() for k in s.api.api_keys] == ["a-long-secret-key"]
    assert DEMO_API_KEY not in repr(s)
