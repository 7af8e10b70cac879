"""How often quality control restates stored readings in a steady stream.

A direct ``Writer.write`` loop into a private PostgreSQL: ``--devices`` devices, one noisy
reading each per batch (a fleet publishing once a minute), ``--batches`` batches; the first
``--stuck`` devices repeat one value for an hour (readings 100-159). Prints how many stored
readings the batches restated (after the devices' first 40 readings, and in all), how many
batches needed a second look, and the stuck and spike counts stored. Results are
quoted in docs/benchmarks.md ("Session 10"); nothing is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
from typing import Any

import psycopg
from collector_procs import servers

from luftnett.collector import writer as wm
from luftnett.collector.validate import validate_message
from luftnett.contracts import mqtt as c
from luftnett.contracts.units import ReadingFlag

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


class CountingWriter(wm.Writer):
    """The writer, counting what its quality control restates and its second looks."""

    def __init__(self, conn: psycopg.Connection[Any], **kw: Any) -> None:
        super().__init__(conn, **kw)
        self.restated: list[int] = []  # per batch
        self.looks = 0  # history queries: one a batch, and the second looks

    def _history_params(self, *args: Any) -> Any:  # type: ignore[override]
        self.looks += 1
        return super()._history_params(*args)

    def _quality(self, *args: Any) -> Any:
        qa, params, hours = super()._quality(*args)
        # params: RESTATE's, the seqs of the restated readings third (an array literal)
        self.restated.append(len(params[2].strip("{}").split(",")) if params else 0)
        return qa, params, hours


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--stuck", type=int, default=3, help="devices stuck for readings 100-159")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rnd = random.Random(args.seed)

    def reading(d: int, s: int) -> c.Reading:
        stuck = d < args.stuck and 100 <= s < 160
        base = 8 + 4 * ((s // 60) % 24 > 7) + d % 5
        v = max(0.0, rnd.gauss(base, 2.5)) + (60 if rnd.random() < 0.005 else 0)
        values = {"pm25_ugm3": 7.0 if stuck else round(v, 1),
                  "pm10_ugm3": 15.0 if stuck else round(v * 1.8, 1),
                  "rh_pct": round(rnd.uniform(40, 90), 1)}  # fmt: skip
        return c.Reading(seq=s, ts=T0 + dt.timedelta(minutes=s), window_s=60, n_samples=60,
                         values=values)  # fmt: skip

    with servers(None) as env, psycopg.connect(env.fresh_db()) as conn:
        w = CountingWriter(conn, calibration="deferred", deferred=True)
        for s in range(args.batches):
            items = []
            for d in range(args.devices):
                dev = f"dev-{d:03d}"
                p = c.ReadingsPayload(device_id=dev, agent_version="bench",
                                      sensor=c.SensorInfo(model="sds011"),
                                      readings=[reading(d, s)])  # fmt: skip
                items.append(validate_message("b", c.readings_topic("b", dev), c.encode(p)))
            w.write(items)
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE flags & %s > 0), count(*) FILTER (WHERE flags & %s > 0),"
            " count(*) FROM readings",
            (int(ReadingFlag.STUCK), int(ReadingFlag.SPIKE)),
        ).fetchone()
    late = sum(w.restated[40:])
    after = args.devices * max(0, args.batches - 40)
    second = w.looks - args.batches
    print(f"readings: {args.devices * args.batches:,}; restated after the first 40 batches: "
          f"{late:,} of {after:,}; in all: {sum(w.restated):,}; second looks: {second}; "
          f"stored stuck, spike, rows: {row}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
