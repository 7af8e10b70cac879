"""SPEC DGS-NO2 968-043 ASCII lines: SENSORS.md §4 examples, non-measurements, error categories."""

from __future__ import annotations

import pytest

from luftnett.edge.drivers import no2_uart
from luftnett.edge.framing import Item, Measurement, Rejected, Reply

LINE = b"110816020533, 26, 21, 46, 28573, 25380, 27367, 00, 00, 01, 34\r\n"


def decode(data: bytes) -> list[Item]:
    f = no2_uart.Framer()
    return [*f.feed(data), *f.flush()]


def test_synthetic_reference_line() -> None:
    (m,) = decode(LINE)
    assert isinstance(m, Measurement)
    assert m.values == {"no2_ppb": 26, "temperature_c": 21, "rh_pct": 46}
    assert m.serial == "110816020533"
    assert m.fields == {
        "serial": "110816020533",
        "adc_gas": 28573,
        "adc_temperature": 25380,
        "adc_rh": 27367,
        "uptime_s": 94,
    }
    assert m.flags == {"warming_up"}  # first hour after power-on: stabilising
    # the raw counts follow SPEC's transfer functions (§4.3)
    assert pytest.approx(21.20, abs=0.01) == 25380 / 65536 * 175.72 - 46.85
    assert pytest.approx(46.20, abs=0.01) == 27367 / 65536 * 125 - 6


def test_builder_reproduces_reference_line() -> None:
    built = no2_uart.measurement_line("110816020533", 26, 21, 46, (28573, 25380, 27367), 94)
    assert built == LINE


@pytest.mark.parametrize(
    ("line", "ppb", "flags"),
    [
        pytest.param(
            b"110816020533, -12, 21, 46, 28573, 25380, 27367, 03, 04, 05, 06\r\n",
            -12.0,
            set(),
            id="dgs-negative-ppb-near-zero",
        ),
        pytest.param(
            b"110816020533, -800, 21, 46, 28573, 25380, 27367, 03, 04, 05, 06\r\n",
            -800.0,
            {"out_of_spec"},
            id="dgs-very-negative-out-of-spec",
        ),
        pytest.param(
            b"110816020533, 6000, 21, 46, 28573, 25380, 27367, 3, 4, 5, 6\r\n",
            6000.0,
            {"out_of_spec"},
            id="dgs-above-5ppm-unpadded-uptime",
        ),
    ],
)
def test_signed_ppb_and_flags(line: bytes, ppb: float, flags: set[str]) -> None:
    (m,) = decode(line)
    assert isinstance(m, Measurement)
    assert m.values["no2_ppb"] == ppb
    assert m.flags == flags


@pytest.mark.parametrize(
    ("data", "command", "fields"),
    [
        pytest.param(b"15SEP17\r\n", "firmware", {"firmware": "15SEP17"}, id="dgs-firmware"),
        pytest.param(b"14FEB17\r\n", "firmware", {"firmware": "14FEB17"}, id="dgs-old-firmware"),
        pytest.param(
            b"nA_per_PPM_x100= 4010\r\n",
            "eeprom",
            {"key": "nA_per_PPM_x100", "value": "4010"},
            id="dgs-eeprom-line",
        ),
        pytest.param(
            b"Gas= NO2\r\n", "eeprom", {"key": "Gas", "value": "NO2"}, id="dgs-eeprom-gas"
        ),
        pytest.param(
            b"\r\nEnter span gas value in PPM: ",
            "prompt",
            {"text": "Enter span gas value in PPM:"},
            id="dgs-span-prompt",
        ),
        pytest.param(
            b"\r\nEnter Average Total: ",
            "prompt",
            {"text": "Enter Average Total:"},
            id="dgs-average-prompt",
        ),
        pytest.param(
            b"Enter Unlock Code: ", "prompt", {"text": "Enter Unlock Code:"}, id="dgs-unlock"
        ),
        pytest.param(
            b"\r\nSetting zero...done\r\n",
            "message",
            {"text": "Setting zero...done"},
            id="dgs-zero-done",
        ),
        pytest.param(
            b"Temperature error\r\n", "message", {"text": "Temperature error"}, id="dgs-error"
        ),
    ],
)
def test_non_measurements_are_replies(data: bytes, command: str, fields: dict[str, object]) -> None:
    (item,) = decode(data)
    assert isinstance(item, Reply)
    assert (item.command, item.fields) == (command, fields)


def test_prompt_then_measurement_in_one_stream() -> None:
    items = decode(b"\r\nEnter span gas value in PPM: " + LINE)
    assert [type(i) for i in items] == [Reply, Measurement]


def test_junk_before_a_line_is_cut_off() -> None:
    items = decode(b"\x00\xff77" + LINE)
    assert items == [Rejected("no_frame", b"\x00\xff77"), *decode(LINE)]


@pytest.mark.parametrize(
    ("data", "category", "detail"),
    [
        pytest.param(
            b"110816020533, 2600, 2145, 4600, 28573, 25380, 27367\r\n",
            "bad_field_count",
            "7 fields (a DGS2 line?)",
            id="dgs2-7-field-line",
        ),
        pytest.param(b"1, 2, 3\r\n", "bad_field_count", "3 fields", id="dgs-3-fields"),
        pytest.param(
            b"11081602053, 26, 21, 46, 28573, 25380, 27367, 00, 00, 01, 34\r\n",
            "bad_field_value",
            "serial",
            id="dgs-11-digit-serial",
        ),
        pytest.param(
            b"110816020533, 2x6, 21, 46, 28573, 25380, 27367, 00, 00, 01, 34\r\n",
            "bad_field_value",
            "no2_ppb",
            id="dgs-non-integer",
        ),
        pytest.param(
            b"110816020533, 26, 21, 46, 28573, 25380, 27367, 00, 25, 01, 34\r\n",
            "bad_field_value",
            "hours",
            id="dgs-hour-25",
        ),
        pytest.param(
            b"110816020533, 26, 21, 46, 70000, 25380, 27367, 00, 00, 01, 34\r\n",
            "bad_field_value",
            "adc_gas",
            id="dgs-adc-over-16-bit",
        ),
        pytest.param(b"\x01\x02\x03\r\n", "no_frame", "", id="dgs-binary-junk"),
        pytest.param(b"X" * 300, "bad_length", "no EOL", id="dgs-no-line-end"),
        pytest.param(LINE[:30], "truncated", "", id="dgs-truncated"),
    ],
)
def test_each_error_category(data: bytes, category: str, detail: str) -> None:
    items = decode(data)
    assert isinstance(items[0], Rejected)
    assert items[0].category == category
    assert detail in items[0].detail
    assert not [i for i in items if isinstance(i, Measurement)]
