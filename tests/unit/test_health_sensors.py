"""Device health's sensor rules on rows as HEALTH_SQL gives them: a sensor silent while its
device reports through another, a replaced one, a long window, and a clock ahead of now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from luftnett.collector.health import assess, silent_sensors

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
MIN = timedelta(minutes=1)


def sensor(
    model: str, serial: str | None, first: datetime, last: datetime, window: float = 60
) -> dict[str, Any]:
    # as json_agg gives them: times as ISO text
    return {"model": model, "serial": serial, "first_ts": first.isoformat(),
            "last_ts": last.isoformat(), "window_s": window}  # fmt: skip


def row(last_ts: datetime | None, sensors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"device_id": "box", "sensor_model": "sds011", "last_seen": NOW, "last_ts": last_ts,
            "last_flags": 0, "seq_reused": 0, "sensors": sensors}  # fmt: skip


def test_a_sensor_behind_its_device_by_more_than_silent_after_is_silent() -> None:
    day = NOW - timedelta(days=1)
    pm, trh = sensor("sds011", "S1", day, NOW - 20 * MIN), sensor("sht31", "T1", day, NOW)
    (quiet,) = silent_sensors([pm, trh], NOW, timedelta(minutes=15))
    assert (quiet.model, quiet.serial, quiet.last_reading) == ("sds011", "S1", NOW - 20 * MIN)
    assert silent_sensors([pm, trh], NOW, timedelta(minutes=25)) == []
    (h,) = assess([row(NOW, [pm, trh])], NOW)
    assert h.problems == ("sensor_silent",)
    assert h.as_dict()["silent_sensors"][0]["last_reading_ts"] == (NOW - 20 * MIN).isoformat()


def test_a_replaced_sensor_and_a_long_window_are_not_silent() -> None:
    day = NOW - timedelta(days=1)
    old = sensor("sds011", "S1", day, NOW - 3 * 60 * MIN)
    new = sensor("sds011", "S2", NOW - 2 * 60 * MIN, NOW)
    hourly = sensor("dgs-no2", "N1", day, NOW - 50 * MIN, window=3600)
    assert silent_sensors([old, new, hourly], NOW, timedelta(minutes=15)) == []
    gone = sensor("dgs-no2", "N1", day, NOW - 121 * MIN, window=3600)
    assert [s.model for s in silent_sensors([new, gone], NOW, timedelta(minutes=15))] == ["dgs-no2"]


def test_a_reading_stamped_ahead_of_now_does_not_make_the_others_silent() -> None:
    day = NOW - timedelta(days=1)
    ahead = NOW + timedelta(days=365)  # an RTC that jumped a year ahead
    skewed = [sensor("sds011", "S1", day, ahead), sensor("sht31", "T1", day, NOW)]
    (h,) = assess([row(ahead, skewed)], NOW)
    assert "sensor_silent" not in h.problems
    (h,) = assess([row(None, [])], NOW)
    assert h.silent_sensors == ()
