"""The writer reads a batch's stored neighbours before dedupe, over the span of every row of the
batch (duplicates included), in the same round trip as the ledger: on a real PostgreSQL, quality
control of the fresh rows is the same as with the neighbours of the fresh rows' span only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luftnett.collector import qc
from luftnett.collector import writer as writer_mod
from luftnett.collector.columns import BatchColumns
from luftnett.collector.validate import Accepted, validate_message
from luftnett.collector.writer import Writer
from luftnett.contracts import mqtt as contract
from luftnett.db.schema import VALUE_COLUMNS

pytestmark = pytest.mark.e2e

ROOT = "t"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=2)
CFG = qc.QcConfig(stuck_n=4, spike_k=2)  # 3 neighbours a side: short series reach past them

# (seq, minute of ts, pm2.5): few values, so runs of equal values (stuck) and jumps (spike)
point = st.tuples(
    st.integers(0, 40), st.integers(0, 60), st.sampled_from([5.0, 5.0, 5.0, 6.0, 80.0])
)


def _message(device_id: str, points: list[tuple[int, int, float]]) -> Accepted:
    readings = [
        contract.Reading(
            seq=s, ts=T0 + timedelta(minutes=m), window_s=60, n_samples=60,
            values={"pm25_ugm3": v, "pm10_ugm3": v * 2},
        )
        for s, m, v in points
    ]  # fmt: skip
    payload = contract.encode(
        contract.ReadingsPayload(
            device_id=device_id,
            agent_version="test",
            sensor=contract.SensorInfo(model="sds011", serial="A1"),
            readings=readings,
        )
    )
    item = validate_message(ROOT, contract.readings_topic(ROOT, device_id), payload)
    assert isinstance(item, Accepted), item
    return item


def _neighbours(
    conn: psycopg.Connection[Any], w: Writer, names: list[str], cols: qc.SeriesColumns
) -> qc.SeriesColumns:
    recs = conn.execute(writer_mod._HISTORY, w._history_params(names, cols), binary=True).fetchall()
    return w._history(names, recs)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stored=st.lists(point, min_size=1, max_size=25, unique_by=lambda p: p[0]),
    batch=st.lists(point, min_size=1, max_size=12),
)
def test_neighbours_of_the_whole_batch_give_the_fresh_rows_the_same_flags(
    pg_url: str, stored: list[tuple[int, int, float]], batch: list[tuple[int, int, float]]
) -> None:
    device_id = f"qh-{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url) as conn:
        w = Writer(conn, qc_config=CFG, rollups=False, calibration="deferred")
        assert w.write([_message(device_id, stored)]).stored == len(stored)
        b = BatchColumns.join([(a.device, a.readings) for a in [_message(device_id, batch)]])
        names, cols = b.names, b.series()
        with conn.transaction():
            keys = w._ledger_keys(names, cols)
            overlaps = conn.execute(writer_mod._LEDGER_OVERLAP, keys.spans, binary=True)
            keep, _added = w.dedupe(names, cols, keys, overlaps.fetchall())
            fresh = b if keep is None else b.take(keep)
            if not len(fresh):
                return  # every row a duplicate: no quality control
            fcols = fresh.series()
            wide = qc.quality_columns(
                _neighbours(conn, w, names, cols), fcols, VALUE_COLUMNS, NOW, CFG
            )
            narrow = qc.quality_columns(
                _neighbours(conn, w, names, fcols), fcols, VALUE_COLUMNS, NOW, CFG
            )
    assert np.array_equal(wide[0], narrow[0])  # checks that ran
    assert np.array_equal(wide[1], narrow[1])  # checks that fired
