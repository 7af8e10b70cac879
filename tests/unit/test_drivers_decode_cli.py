"""`luftnett decode`: captured bytes in, one JSON object per frame out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from luftnett.cli import main
from luftnett.edge.drivers import no2_uart, pms, sds011, sht31, sps30

SDS_WORKED = "AA C0 D4 04 3A 0A A1 60 1D AB"
PMS_WORKED = (
    "42 4D 00 1C 00 05 00 0D 00 16 00 05 00 0D 00 16"
    " 02 FD 00 FC 00 1D 00 0F 00 06 00 06 97 00 03 C5"
)
SPS_REAL = (
    "7E 00 03 00 28 40 A7 83 20 41 17 77 BB 41 4A 5F 83 41 54 8D DD 41 D2 83 3E 42 7D 33 FC 85"
    " 42 26 17 22 42 29 A4 D9 42 2A 29 BC 3F 55 B7 E7 9E 7E"
)
DGS_LINE = b"110816020533, -26, 21, 46, 28573, 25380, 27367, 00, 00, 01, 34\r\n"


def decode(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, ["decode", *args], input=stdin)


def lines(res: Result) -> list[dict[str, Any]]:
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_sds011_worked_example() -> None:
    (obj,) = lines(decode("--sensor", "sds011", SDS_WORKED))
    assert obj["pm25_ugm3"] == 123.6
    assert obj["pm10_ugm3"] == 261.8
    assert obj["device_id"] == "A160"
    assert "serial" not in obj  # the device ID is the serial; printed once
    assert obj["flags"] == []
    assert obj["raw"] == SDS_WORKED


def test_hex_may_be_split_anywhere_and_spaces_are_ignored() -> None:
    whole = lines(decode("--sensor", "sds011", SDS_WORKED))
    assert lines(decode("--sensor", "sds011", "AAC0D4", "04 3A 0A", "A1", "601DAB")) == whole
    assert lines(decode("--sensor", "sds011", SDS_WORKED.lower())) == whole


@pytest.mark.parametrize("sensor", ["pms5003", "pms7003"])
def test_pms_prints_atm_as_mass_and_keeps_cf1(sensor: str) -> None:
    (obj,) = lines(decode("--sensor", sensor, PMS_WORKED))
    assert (obj["pm1_ugm3"], obj["pm25_ugm3"], obj["pm10_ugm3"]) == (5, 13, 22)
    assert (obj["pm1_cf1"], obj["pm25_cf1"], obj["pm10_cf1"]) == (5, 13, 22)
    assert obj["nc03_per_01l"] == 765
    assert obj["version"] == 0x97


def test_sps30_measurement_and_replies() -> None:
    res = decode("--sensor", "sps30", SPS_REAL, "7E 00 03 00 00 FC 7E", "7E 00 00 43 00 BC 7E")
    meas, empty, busy = lines(res)
    assert meas["pm25_ugm3"] == pytest.approx(9.47, abs=0.005)
    assert meas["typical_size_um"] == pytest.approx(0.83, abs=0.01)
    assert empty == {
        "reply": "read_measured_values",
        "state": 0,
        "empty": True,
        "raw": "7E 00 03 00 00 FC 7E",
    }
    assert busy["reply"] == "start_measurement"
    assert busy["error"] == "command not allowed in current state"


def test_dgs_from_stdin_raw_bytes() -> None:
    data = b"\r\nEnter Average Total: " + DGS_LINE + b"15SEP17\r\n"
    prompt, meas, fw = lines(decode("--sensor", "dgs-no2", "-", stdin=data))
    assert prompt["reply"] == "prompt"
    assert (meas["no2_ppb"], meas["temperature_c"], meas["rh_pct"]) == (-26, 21, 46)
    assert meas["serial"] == "110816020533"
    assert fw == {"reply": "firmware", "firmware": "15SEP17", "raw": "31 35 53 45 50 31 37 0D 0A"}


def test_sht31_line_as_hex() -> None:
    (obj,) = lines(decode("--sensor", "sht31", sht31.measurement_line(25, 50).hex()))
    assert (obj["temperature_c"], obj["rh_pct"]) == (25.0, 50.0)


def test_rejected_bytes_print_their_category_and_raw() -> None:
    out = lines(decode("--sensor", "sds011", "01 02", "AA C0 D4 04 3A 0A A1 60 1E AB"))
    assert out[0] == {"error": "no_frame", "raw": "01 02"}
    assert {"error": "bad_checksum", "raw": "AA C0 D4 04 3A 0A A1 60 1E AB"} in out


def test_replies_print_the_command() -> None:
    (obj,) = lines(decode("--sensor", "sds011", "AA C5 07 0F 07 0A A1 60 28 AB"))
    assert obj == {
        "reply": "firmware",
        "device_id": "A160",
        "firmware": "2015-07-10",
        "raw": "AA C5 07 0F 07 0A A1 60 28 AB",
    }


def test_a_long_captured_log_on_stdin() -> None:
    frames = [
        sds011.data_frame(i / 10, i / 5) + (b"\x00" if i % 7 == 0 else b"") for i in range(500)
    ]
    out = lines(decode("--sensor", "sds011", "-", stdin=b"".join(frames)))
    good = [o for o in out if "pm25_ugm3" in o]
    assert len(good) == 500
    assert good[-1]["pm25_ugm3"] == 49.9


@pytest.mark.parametrize(
    ("sensor", "data"),
    [
        pytest.param("pms5003", pms.ack_frame(0xE4, 0), id="pms-ack"),
        pytest.param("sps30", sps30.miso_frame(sps30.CMD_VERSION, 0, bytes(7)), id="sps30-ver"),
        pytest.param("dgs-no2", no2_uart.firmware_line(), id="dgs-fw"),
        pytest.param("sht31", sht31.ok_line("P1"), id="sht31-ok"),
    ],
)
def test_every_sensor_prints_replies(sensor: str, data: bytes) -> None:
    (obj,) = lines(decode("--sensor", sensor, data.hex()))
    assert "reply" in obj


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["AA C0 ZZ"], "not a hex digit: 'Z'", id="not-hex"),
        pytest.param(["AA C"], "odd number of hex digits", id="odd-length"),
        pytest.param(["AA", "-"], "'-' (stdin) must be the only argument", id="dash-and-hex"),
    ],
)
def test_invalid_hex_is_a_usage_error(args: list[str], message: str) -> None:
    res = decode("--sensor", "sds011", *args)
    assert res.exit_code == 2
    assert res.stdout == ""
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert message in errors[0]


def test_unknown_sensor_and_missing_hex_are_usage_errors() -> None:
    assert decode("--sensor", "pms9000", "AA").exit_code == 2
    assert decode("--sensor", "sds011").exit_code == 2


@pytest.mark.parametrize("arg", ["", "   "])
def test_no_bytes_is_a_usage_error(arg: str) -> None:
    res = CliRunner().invoke(main, ["decode", "--sensor", "sds011", arg])
    assert res.exit_code == 2
    assert "no bytes given" in res.output
