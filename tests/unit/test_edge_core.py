"""SDS011 framing, averaging and the durable outbox (no services needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from luftnett.edge.averaging import Averager
from luftnett.edge.drivers import sds011
from luftnett.edge.framing import Measurement, Rejected, Reply
from luftnett.edge.outbox import Outbox

WORKED = bytes.fromhex("AA C0 D4 04 3A 0A A1 60 1D AB")
CLEAN_AIR = bytes.fromhex("AA C0 06 00 06 00 58 D9 3D AB")


@pytest.mark.parametrize(
    ("frame", "pm25", "pm10", "serial"),
    [
        pytest.param(WORKED, 123.6, 261.8, "A160", id="sds011-datasheet"),
        pytest.param(CLEAN_AIR, 0.6, 0.6, "58D9", id="sds011-clean-air"),
    ],
)
def test_sds011_worked_examples(frame: bytes, pm25: float, pm10: float, serial: str) -> None:
    (item,) = sds011.Framer().feed(frame)
    assert isinstance(item, Measurement)
    assert item.values == {"pm25_ugm3": pm25, "pm10_ugm3": pm10}
    assert item.serial == serial


def test_sds011_builders_reproduce_the_datasheet() -> None:
    assert sds011.data_frame(123.6, 261.8) == WORKED
    assert sds011.command(sds011.CMD_QUERY) == bytes.fromhex(
        "AA B4 04 00 00 00 00 00 00 00 00 00 00 00 00 FF FF 02 AB"
    )
    assert sds011.command(sds011.CMD_SLEEP_WORK, b"\x01\x00") == bytes.fromhex(
        "AA B4 06 01 00 00 00 00 00 00 00 00 00 00 00 FF FF 05 AB"
    )
    fw = sds011.Framer().feed(bytes.fromhex("AA C5 07 0F 07 0A A1 60 28 AB"))
    assert isinstance(fw[0], Reply) and fw[0].fields["firmware"] == "2015-07-10"


@pytest.mark.parametrize(
    ("raw", "category"),
    [
        pytest.param(WORKED[:8] + b"\x00" + WORKED[9:], "bad_checksum", id="sds011-bad-checksum"),
        pytest.param(WORKED[:9] + b"\x00", "bad_tail", id="sds011-bad-tail"),
        pytest.param(b"\xaa\x11", "bad_header", id="sds011-bad-header"),
        pytest.param(b"\x01\x02\x03", "no_frame", id="sds011-junk"),
    ],
)
def test_sds011_rejects_with_a_category_and_resyncs(raw: bytes, category: str) -> None:
    items = sds011.Framer().feed(raw + CLEAN_AIR)
    assert category in [i.category for i in items if isinstance(i, Rejected)]
    assert isinstance(items[-1], Measurement) and items[-1].serial == "58D9"


def test_sds011_flags_warming_up_and_out_of_spec() -> None:
    zero = sds011.data_frame(0, 0)
    big = sds011.data_frame(999.9, 1999.9)
    a, b = sds011.Framer().feed(zero + big)
    assert isinstance(a, Measurement) and a.flags == {"warming_up"}
    assert isinstance(b, Measurement) and b.flags == {"out_of_spec"}


@given(st.lists(st.binary(max_size=30), max_size=8), st.lists(st.integers(1, 7), max_size=10))
def test_sds011_garbage_between_frames_never_loses_a_frame(
    junk: list[bytes], chunks: list[int]
) -> None:
    frames = [sds011.data_frame(i + 0.5, i + 1.0, b"\x12\x34") for i in range(len(junk) + 1)]
    stream = b"".join(j + f for j, f in zip([b"", *junk], frames, strict=True))
    framer = sds011.Framer()
    items = []
    pos = 0
    for size in chunks:
        items += framer.feed(stream[pos : pos + size])
        pos += size
    items += framer.feed(stream[pos:])
    got = [i.raw for i in items if isinstance(i, Measurement)]
    # every emitted frame is found, in order (junk may add look-alike frames between them)
    it = iter(got)
    assert all(any(g == f for g in it) for f in frames)


def test_averager_closes_windows_on_the_clock() -> None:
    avg = Averager(window_s=10, expected_interval_s=1)
    m = lambda v: Measurement(values={"pm25_ugm3": v}, raw=b"")  # noqa: E731
    t0 = 1_700_000_000.0  # a multiple of 10
    out = []
    for i in range(10):
        out += avg.add(m(float(i)), t0 + i + 0.5)
    assert out == []
    out += avg.close_due(t0 + 10.01)
    assert len(out) == 1
    r = out[0]
    assert r["n_samples"] == 10
    assert r["values"]["pm25_ugm3"] == pytest.approx(4.5)
    assert r["ts"] == datetime.fromtimestamp(t0 + 10, UTC).isoformat()
    assert r["flags"] == []
    # a window with too few samples is flagged, not dropped
    avg.add(m(1.0), t0 + 15)
    (short,) = avg.close_due(t0 + 21)
    assert short["flags"] == ["partial_window"]


def test_outbox_numbers_survive_restarts_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    seqs = [box.append({"v": i}) for i in range(3)]
    assert seqs == [0, 1, 2]
    box.delete([0, 1, 2])
    box.close()
    box = Outbox(path)
    assert len(box) == 0
    assert box.append({"v": 3}) == 3  # never reused, even after everything was sent
    assert box.pending(10) == [{"v": 3, "seq": 3}]
    assert box.pending(10, after=3) == []
    box.close()
