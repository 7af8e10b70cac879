"""Sensirion SPS30 (SHDLC): every worked example in SENSORS.md §3 and each error category."""

from __future__ import annotations

import math
import struct

import pytest

from luftnett.edge.drivers import sps30
from luftnett.edge.framing import Item, Measurement, Rejected, Reply

H = bytes.fromhex
REAL = H(
    "7E 00 03 00 28 40 A7 83 20 41 17 77 BB 41 4A 5F 83 41 54 8D DD 41 D2 83 3E 42 7D 33 FC 85"
    " 42 26 17 22 42 29 A4 D9 42 2A 29 BC 3F 55 B7 E7 9E 7E"
)
ALL_ZERO = H("7E 00 03 00 28") + bytes(40) + H("D4 7E")


def decode(data: bytes) -> list[Item]:
    f = sps30.Framer()
    return [*f.feed(data), *f.flush()]


def test_worked_example_3_real_measurement() -> None:
    (m,) = decode(REAL)
    assert isinstance(m, Measurement)
    expected = {
        "pm1_ugm3": 5.23,
        "pm25_ugm3": 9.47,
        "pm4_ugm3": 12.65,
        "pm10_ugm3": 13.28,
        "nc05_cm3": 26.31,
        "nc1_cm3": 37.00,
        "nc25_cm3": 41.52,
        "nc4_cm3": 42.41,
        "nc10_cm3": 42.54,
        "typical_size_um": 0.83,
    }
    assert m.values.keys() == expected.keys()
    for name, value in expected.items():
        assert m.values[name] == pytest.approx(value, abs=0.006), name
    assert m.flags == frozenset()
    assert m.fields == {"state": 0, "format": "float"}


@pytest.mark.parametrize(
    ("built", "wire"),
    [
        pytest.param(sps30.START_FLOAT, "7E 00 00 02 01 03 F9 7E", id="sps30-start-float"),
        pytest.param(sps30.START_UINT16, "7E 00 00 02 01 05 F7 7E", id="sps30-start-uint16"),
        pytest.param(
            sps30.command(sps30.CMD_AUTO_CLEAN, b"\x00"),
            "7E 00 80 01 00 7D 5E 7E",
            id="sps30-auto-clean-stuffed-checksum",
        ),
        pytest.param(sps30.STOP, "7E 00 01 00 FE 7E", id="sps30-stop"),
        pytest.param(sps30.READ, "7E 00 03 00 FC 7E", id="sps30-read"),
        pytest.param(sps30.SLEEP, "7E 00 10 00 EF 7E", id="sps30-sleep"),
        pytest.param(sps30.WAKE, "7E 00 7D 31 00 EE 7E", id="sps30-wake-stuffed"),
        pytest.param(sps30.FAN_CLEAN, "7E 00 56 00 A9 7E", id="sps30-fan-clean"),
        pytest.param(
            sps30.command(sps30.CMD_INFO, b"\x00"), "7E 00 D0 01 00 2E 7E", id="sps30-product"
        ),
        pytest.param(
            sps30.command(sps30.CMD_INFO, b"\x03"), "7E 00 D0 01 03 2B 7E", id="sps30-serial"
        ),
        pytest.param(sps30.READ_VERSION, "7E 00 D1 00 2E 7E", id="sps30-version"),
        pytest.param(
            sps30.command(sps30.CMD_STATUS, b"\x00"), "7E 00 D2 01 00 2C 7E", id="sps30-status"
        ),
        pytest.param(sps30.RESET, "7E 00 D3 00 2C 7E", id="sps30-reset"),
    ],
)
def test_commands_match_the_reference(built: bytes, wire: str) -> None:
    assert built == H(wire)


@pytest.mark.parametrize(
    ("wire", "command", "fields"),
    [
        pytest.param("7E 00 01 00 00 FE 7E", "stop_measurement", {"state": 0}, id="stop-reply"),
        pytest.param(
            "7E 00 03 00 00 FC 7E",
            "read_measured_values",
            {"state": 0, "empty": True},
            id="sps30-empty-read-is-not-an-error",
        ),
        pytest.param("7E 00 10 00 00 EF 7E", "sleep", {"state": 0}, id="sps30-sleep-reply"),
        pytest.param(
            "7E 00 D2 00 05 00 00 00 00 00 28 7E",
            "read_device_status",
            {
                "state": 0,
                "status_register": 0,
                "speed_warning": False,
                "laser_error": False,
                "fan_error": False,
            },
            id="sps30-status-reply",
        ),
        pytest.param(
            "7E 00 D0 00 09 30 30 30 38 30 30 30 30 00 9E 7E",
            "device_information",
            {"state": 0, "text": "00080000"},
            id="sps30-product-type-real-unit",
        ),
        pytest.param(
            "7E 00 D1 00 07 02 01 00 06 00 02 00 1C 7E",
            "read_version",
            {"state": 0, "firmware": "2.1", "hardware": 6, "shdlc": "2.0"},
            id="sps30-version",
        ),
        pytest.param(
            "7E 00 7D 31 43 00 AB 7E",
            "wake_up",
            {"state": 0x43, "error": "command not allowed in current state"},
            id="sps30-wake-while-awake-0x43",
        ),
        pytest.param(
            "7E 00 00 43 00 BC 7E",
            "start_measurement",
            {"state": 0x43, "error": "command not allowed in current state"},
            id="sps30-start-while-measuring-0x43",
        ),
        pytest.param(
            "7E 7D 5E 7D 5D 7D 31 03 12 7D 33 14 B7 7E",
            "0x7d",
            {"state": 0x11, "error": "0x11", "adr": 0x7E, "data": "12 13 14"},
            id="sps30-stuffing-in-address-command-state-data",
        ),
    ],
)
def test_replies(wire: str, command: str, fields: dict[str, object]) -> None:
    assert decode(H(wire)) == [Reply(command, fields, H(wire))]


def test_unstuffing_is_a_state_machine_not_substring_replacement() -> None:
    assert sps30.unstuff(H("7D 5D 31")) == H("7D 31")
    assert sps30.unstuff(H("7D 5E 7D 5D 7D 31 7D 33")) == H("7E 7D 11 13")
    assert sps30.unstuff(H("7D 40")) is None
    assert sps30.unstuff(H("00 7D")) is None
    data = bytes(range(256))
    assert sps30.unstuff(sps30.stuff(data)) == data


def test_all_zero_reply_is_kept_and_flagged_warming_up() -> None:
    (m,) = decode(ALL_ZERO)
    assert isinstance(m, Measurement)
    assert m.flags == {"warming_up"}


def test_uint16_format_reports_size_in_um() -> None:
    values = {name: float(i + 1) for i, name in enumerate(sps30.VALUES)}
    values["typical_size_um"] = 0.83
    (m,) = decode(sps30.measurement_frame(values, sps30.FORMAT_UINT16))
    assert isinstance(m, Measurement)
    assert m.values == values
    assert m.fields["format"] == "uint16"


def test_float_round_trip_with_stuffed_bytes() -> None:
    values = dict(
        zip(sps30.VALUES, [5.25, 9.5, 12.75, 13.25, 26, 37, 41.5, 42, 42.5, 0.5], strict=True)
    )
    frame = sps30.measurement_frame(values)
    (m,) = decode(frame)
    assert isinstance(m, Measurement)
    assert m.values == values


def test_non_monotonic_masses_are_flagged_inconsistent() -> None:
    values = dict(zip(sps30.VALUES, [9.0, 5.0, 12.0, 13.0, 1, 2, 3, 4, 5, 0.5], strict=True))
    (m,) = decode(sps30.measurement_frame(values))
    assert isinstance(m, Measurement)
    assert m.flags == {"inconsistent"}


def test_device_status_bit_is_reported() -> None:
    values = dict(zip(sps30.VALUES, [1, 2, 3, 4, 1, 2, 3, 4, 5, 0.5], strict=True))
    (m,) = decode(sps30.measurement_frame(values, state=0x80))
    assert isinstance(m, Measurement)
    assert m.fields["device_status_flag"] is True


def test_flag_sharing_between_frames() -> None:
    """One flag closing a frame and opening the next: both frames decode."""
    empty = sps30.miso_frame(sps30.CMD_READ)
    items = decode(empty + empty[1:] + REAL)
    assert [type(i) for i in items] == [Reply, Reply, Measurement]


def test_junk_after_a_frame_is_no_frame() -> None:
    empty = sps30.miso_frame(sps30.CMD_READ)
    items = decode(empty + H("01 02 03") + empty)
    assert items[1] == Rejected("no_frame", H("01 02 03"), "bad_length")
    assert [type(i) for i in items] == [Reply, Rejected, Reply]


@pytest.mark.parametrize(
    ("wire", "category"),
    [
        pytest.param("01 02 03", "no_frame", id="sps30-no-frame"),
        pytest.param("7E 00 03 00 00 7D 40 7E", "bad_escape", id="sps30-bad-escape"),
        pytest.param("7E 00 03 00 00 7D 7E", "bad_escape", id="sps30-dangling-escape"),
        pytest.param("7E 00 03 00 05 00 FC 7E", "bad_length", id="sps30-length-mismatch"),
        pytest.param("7E 00 03 7E", "bad_length", id="sps30-too-short"),
        pytest.param(
            "7E 00 D0 00 09 30 30 30 38 30 30 30 30 00 9B 7E",
            "bad_checksum",
            id="sps30-datasheet-product-type-erratum",
        ),
        pytest.param(
            "7E 00 D1 01 07 02 01 00 06 00 02 00 1C 7E",
            "bad_checksum",
            id="sps30-datasheet-version-erratum",
        ),
        pytest.param("7E 00 03 00 28 40 A7", "truncated", id="sps30-truncated"),
    ],
)
def test_each_error_category(wire: str, category: str) -> None:
    items = decode(H(wire))
    assert isinstance(items[0], Rejected)
    assert items[0].category == category
    assert not [i for i in items if not isinstance(i, Rejected)]


def test_no_stop_flag_within_a_maximal_frame_is_bad_length() -> None:
    items = decode(b"\x7e" + b"\x00" * (sps30.MAX_FRAME + 10))
    assert items[0].category == "bad_length"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        pytest.param(struct.pack(">10f", *[math.nan] * 10), "non-finite", id="sps30-nan"),
        pytest.param(struct.pack(">10f", *[-1.0] * 10), "negative", id="sps30-negative"),
    ],
)
def test_impossible_float_values_are_bad_field_value(data: bytes, detail: str) -> None:
    (item,) = decode(sps30.miso_frame(sps30.CMD_READ, 0, data))
    assert isinstance(item, Rejected)
    assert item.category == "bad_field_value"
    assert detail in item.detail


def test_read_reply_with_odd_length_is_bad_length() -> None:
    (item,) = decode(sps30.miso_frame(sps30.CMD_READ, 0, bytes(12)))
    assert isinstance(item, Rejected)
    assert item.category == "bad_length"


def test_host_mode_parses_what_the_host_sends() -> None:
    f = sps30.Framer(host=True)
    items = f.feed(sps30.WAKE_PULSE + sps30.WAKE + sps30.START_FLOAT)
    assert items[0] == Rejected("no_frame", b"\xff")
    assert [i.command for i in items[1:]] == ["wake_up", "start_measurement"]  # type: ignore[union-attr]
    assert items[2].fields == {"cmd": 0, "data": "01 03"}  # type: ignore[union-attr]
