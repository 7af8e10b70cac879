"""The writer's batch columns: however the messages of a batch carry their readings (one
ReadingRow, or ReadingColumns), BatchColumns.join lays out the same readings in message order,
and each of its rows is the row the message gives."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest

from luftnett.collector.columns import BatchColumns, ReadingColumns, as_columns, count
from luftnett.collector.validate import Accepted, validate_message
from luftnett.contracts import mqtt as contract
from luftnett.db.schema import READING_COLUMNS, VALUE_COLUMNS

_AT_VALUES = [READING_COLUMNS.index(c) for c in VALUE_COLUMNS]


def _as_real(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """``row`` with its values as the readings table stores them (``real``)."""
    out = list(row)
    for i in _AT_VALUES:
        if out[i] is not None:
            out[i] = float(np.float32(out[i]))
    return tuple(out)


def _message(rng: random.Random, device: str, first: int, n: int, plain: bool) -> Accepted:
    readings = []
    for seq in range(first, first + n):
        values: dict[str, float] = {"pm25_ugm3": round(rng.uniform(0, 50), 3)}
        if rng.random() < 0.5:
            values["pm10_ugm3"] = round(rng.uniform(0, 90), 3)
        if rng.random() < 0.2:
            values["rh_pct"] = 55.5
        r: dict[str, Any] = {"seq": seq, "ts": f"2026-03-29T01:{seq % 60:02d}:0{seq % 10}Z",
                             "window_s": 60, "n_samples": seq % 7, "values": values}  # fmt: skip
        if not plain and rng.random() < 0.5:
            r["flags"] = ["clock_suspect"]
            r["sensor"] = {"model": "sht31", "serial": "t-1"}
            values["pm25_cf1"] = 1.5
        readings.append(r)
    doc = {"device_id": device, "agent_version": "1", "sensor": {"model": "sds011",
           "serial": None if device.endswith("1") else "s"}, "readings": readings}  # fmt: skip
    item = validate_message("t", contract.readings_topic("t", device), json.dumps(doc).encode())
    assert isinstance(item, Accepted)
    return item


def _fields(b: BatchColumns) -> dict[str, Any]:
    out: dict[str, Any] = {"names": b.names, "extra": b.extra}
    for f in ("dev", "seq", "ts_us", "t", "window_s", "n_samples", "edge", "schema"):
        out[f] = getattr(b, f).tolist()
    out["vals"] = np.where(np.isnan(b.vals), -1e300, b.vals).tolist()
    out["model"] = [b.texts[i] for i in b.model.tolist()]
    out["serial"] = [b.texts[i] for i in b.serial.tolist()]
    return out


@pytest.mark.parametrize("mix", ["rows", "columns", "mixed"])
def test_join_lays_out_every_message_in_order(mix: str) -> None:
    rng = random.Random(mix)
    items = []
    for k in range(60):
        device = f"dev-{k % 7:0{3 + k % 3}d}"
        n = 1 if mix == "rows" or (mix == "mixed" and k % 2) else rng.randint(1, 5)
        items.append(_message(rng, device, k * 10, n, plain=mix == "rows" or k % 3 > 0))
    if mix == "rows":
        assert all(isinstance(i.readings, tuple) for i in items)  # one tuple per message
    batch = BatchColumns.join([(i.device, i.readings) for i in items])
    as_cols = BatchColumns.join([(i.device, as_columns(i.readings)) for i in items])
    assert _fields(batch) == _fields(as_cols)
    rows = [r for i in items for r in i.rows]
    assert len(batch) == len(rows) == sum(count(i.readings) for i in items)
    flags = [r[-2] for r in rows]
    # the values as stored: rounded to real (round(uniform, 3) seldom is one)
    assert [batch.row(k, flags[k]) for k in range(len(batch))] == [_as_real(r) for r in rows]
    assert any(_as_real(r) != r for r in rows)
    # and a row's columns give the row back
    for i in items:
        assert ReadingColumns.from_rows(i.rows).rows(i.device) == i.rows
