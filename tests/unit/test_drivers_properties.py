"""Property tests for every framer (hypothesis): noise never raises, never hides a good frame,
and the result does not depend on how the stream is chunked."""

from __future__ import annotations

import json
import math
from types import ModuleType

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from luftnett.contracts.units import QUANTITIES, ReadingFlag
from luftnett.edge.decode_cli import item_json
from luftnett.edge.drivers import no2_uart, pms, sds011, sht31, sps30
from luftnett.edge.framing import ERROR_CATEGORIES, Item, Measurement, Rejected, Reply

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
u8, u16 = st.integers(0, 0xFF), st.integers(0, 0xFFFF)

FRAMES: dict[str, st.SearchStrategy[bytes]] = {
    "sds011": st.one_of(
        st.builds(
            sds011.data_frame,
            u16.map(lambda v: v / 10),
            u16.map(lambda v: v / 10),
            st.binary(min_size=2, max_size=2),
        ),
        st.builds(
            sds011.reply_frame,
            st.sampled_from([2, 5, 6, 7, 8]),
            st.binary(min_size=3, max_size=3),
            st.binary(min_size=2, max_size=2),
        ),
    ),
    "pms": st.one_of(
        st.builds(pms.data_frame, st.lists(u16, min_size=12, max_size=12), u8, u8),
        st.builds(pms.ack_frame, st.sampled_from([0xE1, 0xE4]), st.integers(0, 1)),
    ),
    "sps30": st.one_of(
        st.builds(
            sps30.measurement_frame,
            st.fixed_dictionaries({name: st.floats(0, 5000, width=32) for name in sps30.VALUES}),
            st.just(sps30.FORMAT_FLOAT),
            st.sampled_from([0, 0x80]),
        ),
        st.builds(
            sps30.measurement_frame,
            st.fixed_dictionaries(dict.fromkeys(sps30.VALUES[:-1], u16)),
            st.just(sps30.FORMAT_UINT16),
        ),
        st.builds(
            sps30.miso_frame,
            st.sampled_from([c for c in sps30.COMMAND_NAMES if c != sps30.CMD_READ]),
            st.sampled_from([0, 0x43, 0x80]),
            st.binary(max_size=16),
        ),
        st.just(sps30.miso_frame(sps30.CMD_READ)),
    ),
    "no2_uart": st.builds(
        no2_uart.measurement_line,
        st.integers(0, 10**12 - 1).map("{:012d}".format),
        st.integers(-1000, 20000),
        st.integers(-40, 85),
        st.integers(0, 100),
        st.tuples(u16, u16, u16),
        st.integers(0, 10**7),
    ),
    "sht31": st.one_of(
        st.builds(sht31.raw_line, u16, u16),
        st.builds(sht31.error_line, st.sampled_from(["NACK", "BUS", "TIMEOUT"])),
        st.builds(sht31.ok_line, st.sampled_from(sht31.COMMANDS)),
    ),
}
MODULES: dict[str, ModuleType] = {
    "sds011": sds011,
    "pms": pms,
    "sps30": sps30,
    "no2_uart": no2_uart,
    "sht31": sht31,
}
#: framers whose every output, rejections included, is independent of chunking
CHUNK_EXACT = {"pms", "sps30", "no2_uart", "sht31"}


def noise(name: str) -> st.SearchStrategy[bytes]:
    """Random bytes mixed with fragments of real frames: reaches the deep error paths."""
    fragment = st.tuples(FRAMES[name], st.integers(0, 40), st.integers(0, 40)).map(
        lambda t: t[0][t[1] : len(t[0]) - t[2]]
    )
    return st.lists(st.one_of(st.binary(max_size=12), fragment), max_size=4).map(b"".join)


def run(mod: ModuleType, chunks: list[bytes]) -> tuple[list[Item], object]:
    framer = mod.Framer()
    items: list[Item] = []
    for c in chunks:
        items += framer.feed(c)
    items += framer.flush()
    return items, framer


def check_items(items: list[Item], framer: object) -> None:
    flags = {f.lower() for f in ReadingFlag.__members__}
    for item in items:
        assert isinstance(item, Measurement | Reply | Rejected)
        json.dumps(item_json(item))
        if isinstance(item, Rejected):
            assert item.category in ERROR_CATEGORIES
        if isinstance(item, Measurement):
            assert set(item.values) <= set(QUANTITIES)
            assert all(math.isfinite(v) for v in item.values.values())
            assert item.flags <= flags
    counts = framer.counts  # type: ignore[attr-defined]
    for category in ERROR_CATEGORIES:
        assert counts[category] == sum(
            1 for i in items if isinstance(i, Rejected) and i.category == category
        )


def accepted(items: list[Item]) -> list[bytes]:
    return [i.raw for i in items if not isinstance(i, Rejected)]


def is_subsequence(needles: list[bytes], haystack: list[bytes]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


@pytest.mark.parametrize("name", sorted(MODULES))
@PROPS
@given(data=st.data())
def test_random_bytes_never_raise(name: str, data: st.DataObject) -> None:
    stream = data.draw(st.one_of(st.binary(max_size=600), noise(name)), label="stream")
    items, framer = run(MODULES[name], [stream])
    check_items(items, framer)


@pytest.mark.parametrize("name", sorted(MODULES))
@PROPS
@given(data=st.data())
def test_garbage_between_frames_never_loses_a_frame(name: str, data: st.DataObject) -> None:
    frames = data.draw(st.lists(FRAMES[name], min_size=1, max_size=5), label="frames")
    garbage = data.draw(
        st.lists(
            st.one_of(st.binary(max_size=30), noise(name)),
            min_size=len(frames) + 1,
            max_size=len(frames) + 1,
        ),
        label="garbage",
    )
    stream = garbage[0] + b"".join(f + g for f, g in zip(frames, garbage[1:], strict=True))
    items, framer = run(MODULES[name], [stream])
    check_items(items, framer)
    assert is_subsequence(frames, accepted(items))


@pytest.mark.parametrize("name", sorted(MODULES))
@PROPS
@given(data=st.data())
def test_chunking_does_not_change_the_result(name: str, data: st.DataObject) -> None:
    parts = data.draw(st.lists(st.one_of(FRAMES[name], noise(name)), max_size=6), label="parts")
    stream = b"".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12), label="cuts"))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    whole, _ = run(MODULES[name], [stream])
    split, framer = run(MODULES[name], chunks)
    check_items(split, framer)
    if name in CHUNK_EXACT:
        assert split == whole
    else:  # the SDS011 framer reports junk up to each chunk end; frames are the same
        assert accepted(split) == accepted(whole)


#: fixed-length binary framers and their start byte
START = {"sds011": sds011.HEAD, "pms": pms.HEAD[0]}


@pytest.mark.parametrize("name", sorted(START))
@PROPS
@given(data=st.data())
def test_a_corrupted_frame_is_reported_once(name: str, data: st.DataObject) -> None:
    """Good frames around one whose checksum byte is wrong: the bad one is one rejection with
    exactly its bytes (they were also reported again as no_frame until 2026-11-24), and every
    good frame is kept."""
    frames = data.draw(st.lists(FRAMES[name], min_size=1, max_size=4), label="frames")
    k = data.draw(st.integers(0, len(frames) - 1), label="which")
    bad = bytearray(frames[k])
    bad[-2 if name == "sds011" else -1] ^= data.draw(st.integers(1, 0xFF), label="xor")
    assume(START[name] not in bad[1:])  # a start byte inside: resync there (other tests)
    stream = [*frames[:k], bytes(bad), *frames[k + 1 :]]
    items, framer = run(MODULES[name], [b"".join(stream)])
    check_items(items, framer)
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [(r.category, r.raw) for r in rejected] == [("bad_checksum", bytes(bad))]
    assert accepted(items) == [f for i, f in enumerate(frames) if i != k]
