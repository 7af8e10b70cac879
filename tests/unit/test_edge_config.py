"""Edge config: sensors named and validated, duty-cycle commands, the replay pacer."""

from __future__ import annotations

from pathlib import Path

import pytest

from luftnett.edge import drivers
from luftnett.edge.agent import Pacer
from luftnett.edge.config import EdgeConfig, SensorConfig, duty_commands, from_settings
from luftnett.edge.drivers import pms, sds011, sps30
from luftnett.errors import ConfigError
from luftnett.settings import Settings


def cfg(*sensors: SensorConfig, **kw: object) -> EdgeConfig:
    return EdgeConfig(
        device_id="dev-1", outbox_path=Path("o"), mqtt_url="mqtt://h", sensors=sensors, **kw
    )  # type: ignore[arg-type]


def test_sensors_get_unique_names_and_the_device_window() -> None:
    got = cfg(
        SensorConfig("sds011", "/dev/a"),
        SensorConfig("sds011", "/dev/b", window_s=10),
        SensorConfig("sht31", "/dev/c", name="trh"),
        window_s=60,
    ).sensor_list()
    assert [(s.name, s.window_s) for s in got] == [("sds011", 60), ("sds011-2", 10), ("trh", 60)]


def test_a_0_1_config_still_means_one_sensor() -> None:
    (s,) = EdgeConfig("dev-1", Path("o"), "mqtt://h", "sds011", "/dev/ttyUSB0").sensor_list()
    assert (s.model, s.port, s.window_s, s.warmup_s) == ("sds011", "/dev/ttyUSB0", 60.0, 0.0)


@pytest.mark.parametrize(
    ("sensors", "message"),
    [
        pytest.param((SensorConfig("nope", "/dev/a"),), "unknown sensor model", id="model"),
        pytest.param(
            (SensorConfig("sds011", "/dev/a"), SensorConfig("sht31", "/dev/a")),
            "share a serial port",
            id="port-twice",
        ),
        pytest.param(
            (SensorConfig("sds011", "/dev/a", name="x"), SensorConfig("sht31", "/dev/b", name="x")),
            "used twice",
            id="name-twice",
        ),
        pytest.param(
            (SensorConfig("sds011", "/dev/a", window_s=60, warmup_s=30, awake_s=20),),
            "awake_s must lie between",
            id="awake-shorter-than-warmup",
        ),
        pytest.param(
            (SensorConfig("sds011", "/dev/a", window_s=60, awake_s=90),),
            "awake_s must lie between",
            id="awake-longer-than-window",
        ),
        pytest.param(
            (SensorConfig("dgs-no2", "/dev/a", window_s=60, awake_s=30),),
            "dgs-no2 has no sleep the agent uses",
            id="dgs-no2-cannot-sleep",
        ),
        pytest.param(
            (SensorConfig("sht31", "/dev/a", window_s=60, awake_s=30),),
            "sht31 has no sleep the agent uses",
            id="sht31-cannot-sleep",
        ),
    ],
)
def test_bad_sensor_configs_are_refused_with_a_reason(
    sensors: tuple[SensorConfig, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        cfg(*sensors).sensor_list()


def test_duty_commands_of_the_sds011_are_its_sleep_and_work_commands() -> None:
    sleep, wake = duty_commands(sds011) or ((), ())
    assert sleep == (sds011.command(sds011.CMD_SLEEP_WORK, b"\x01\x00"),)
    assert wake == sds011.INIT_COMMANDS
    assert wake[0] == sds011.command(sds011.CMD_SLEEP_WORK, b"\x01\x01")


def test_pms_and_sps30_export_their_sleep_and_wake_sequences() -> None:
    assert duty_commands(pms) == ((pms.SLEEP,), (pms.WAKE, pms.ACTIVE))
    sleep, wake = duty_commands(sps30) or ((), ())
    assert sleep == (sps30.STOP, sps30.SLEEP)  # sleep is allowed from Idle only
    assert wake == (sps30.WAKE_PULSE + sps30.WAKE, sps30.START_FLOAT)
    assert sleep == (bytes.fromhex("7E 00 01 00 FE 7E"), bytes.fromhex("7E 00 10 00 EF 7E"))


@pytest.mark.parametrize("model", ["dgs-no2", "sht31"])
def test_sensors_without_a_duty_cycle_export_no_sleep(model: str) -> None:
    assert duty_commands(drivers.get(model)) is None


def test_every_registered_driver_is_usable_by_the_agent() -> None:
    for model in drivers.DRIVERS:
        d = drivers.get(model)
        assert isinstance(d.BAUD, int) and callable(d.Framer), model
        assert all(isinstance(c, bytes) for c in d.INIT_COMMANDS), model
        duty = duty_commands(d)
        assert duty is None or (duty[0] and duty[1]), model


def test_from_settings_reads_sensors_and_credentials() -> None:
    s = Settings(
        edge={
            "device_id": "school-07",
            "mqtt_password": "pw",
            "sensors": [{"model": "sds011", "port": "/dev/ttyUSB0", "awake_s": 60}],
            "window_s": 300,
        }
    )
    c = from_settings(s, "mqtts://broker:8883")
    assert (c.username, c.password) == ("school-07", "pw")
    assert "pw" not in repr(c)
    (sensor,) = c.sensor_list()
    assert (sensor.warmup_s, sensor.awake_s, sensor.window_s) == (30.0, 60.0, 300.0)


def test_outbox_bounds_default_to_the_outboxs_own_and_pass_through() -> None:
    from luftnett.edge import outbox

    c = from_settings(Settings(edge={"device_id": "school-07"}), "mqtt://broker")
    assert (c.outbox_max_rows, c.outbox_max_bytes, c.outbox_reserve_bytes) == (
        outbox.DEFAULT_MAX_ROWS,
        outbox.DEFAULT_MAX_BYTES,
        outbox.DEFAULT_RESERVE_BYTES,
    )
    s = Settings(edge={"device_id": "school-07", "outbox_reserve_bytes": 0})
    assert from_settings(s, "mqtt://broker").outbox_reserve_bytes == 0


def test_pacer_bounds_the_rate_and_allows_one_batch_at_once() -> None:
    p = Pacer(rate=1000, burst=100)
    assert p.take(1000) == 0.0  # the bucket starts full; capacity is max(burst, rate)
    wait = p.take(100)
    assert 0.05 < wait <= 0.1  # ~100 tokens at 1000/s
    assert Pacer(rate=0, burst=1).take(10**6) == 0.0  # 0 = unbounded
    small = Pacer(rate=10, burst=100)
    assert small.take(100) == 0.0  # one batch may go at once even when the rate is lower
    assert small.take(100) == pytest.approx(10.0, abs=0.1)
