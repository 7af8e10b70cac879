"""The collector's hot path, stage by stage: CPU per message of receiving (paho), validating and
writing, measured apart so the stage that limits the whole can be named.

Receiving runs in a process of its own (collector_load.py ``sink``: paho set up as the
collector's, acking in ``on_message``): plain paho with MQTT v5 and 3.1.1, and the collector's
buffered client with 3.1.1 (its default). Validating and writing run here, on the collector's
own functions (``validate_message``, ``Writer.write`` in batches of the default batch size).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

import psycopg
from collector_procs import (
    LOAD,
    CpuMeter,
    Env,
    Proc,
    Workload,
    finish_publishers,
    go,
    publish,
)
from quiet import exclusive

from luftnett.contracts.mqtt import readings_topic
from luftnett.settings import CollectorSettings


@dataclass(frozen=True)
class Stage:
    name: str
    workload: str
    us_per_msg: float  # CPU microseconds per message (one core)
    us_per_reading: float
    note: str = ""


def receive(env: Env, w: Workload, protocol: str, buffered: bool = False) -> Stage:
    root = env.next_root()
    spec = {
        "host": "127.0.0.1",
        "port": env.mq.port,
        "topic_root": root,
        "client_id": f"sink-{env.runs}",
        "protocol": protocol,
        "buffered": buffered,
        "messages": len(w.messages),
    }
    sink = Proc("sink", [sys.executable, str(LOAD), "sink", str(env.spec_file("sink", spec))], env)
    try:
        sink.wait_line("subscribed")
        pubs = publish(env, root, w)
        with exclusive(f"collector stages: receive {protocol} {w.name}"):
            go(pubs)
            finish_publishers(pubs)
            res = json.loads(sink.wait_line("cpu_s", 300))
    finally:
        sink.stop()
    n = res["messages"]
    rate = n / res["wall_s"] if res["wall_s"] > 0 else 0.0
    return Stage(
        f"receive: paho {protocol}{' buffered (the collector)' if buffered else ''}, manual ack",
        w.name,
        1e6 * res["cpu_s"] / n,
        1e6 * res["cpu_s"] / (n * w.readings / len(w.messages)),
        f"{rate:,.0f} msg/s",
    )


def validate_and_write(env: Env, w: Workload) -> list[Stage]:
    from luftnett.collector.validate import Accepted, Quarantined, validate_message
    from luftnett.collector.writer import Writer

    root = "bench"
    topics = [readings_topic(root, d) for d, _ in w.messages]
    payloads = [p.encode() for _, p in w.messages]
    with exclusive(f"collector stages: validate {w.name}"):
        cpu0 = time.process_time()
        items: list[Accepted | Quarantined] = [
            validate_message(root, t, p) for t, p in zip(topics, payloads, strict=True)
        ]
        v_cpu = time.process_time() - cpu0
    out = [
        Stage(
            "validate_message (msgspec + rows)",
            w.name,
            1e6 * v_cpu / len(items),
            1e6 * v_cpu / w.readings,
        )
    ]
    cs = CollectorSettings()  # the collector's transaction limits: messages and readings
    batch = max(1, min(cs.batch_size, cs.batch_readings * len(w.messages) // w.readings))
    db = env.fresh_db()
    with psycopg.connect(db) as conn, exclusive(f"collector stages: write {w.name}"):
        writer = Writer(conn, deferred=True)  # as the collector runs it: rollups queued
        meter = CpuMeter(env)
        meter.start()
        cpu0, t0 = time.process_time(), time.time()
        for i in range(0, len(items), batch):
            writer.write(items[i : i + batch])
        w_cpu, wall = time.process_time() - cpu0, time.time() - t0
        cpu = meter.stop()
    n = len(items)
    out.append(
        Stage(
            f"Writer.write, {batch} messages per transaction (client side)",
            w.name,
            1e6 * w_cpu / n,
            1e6 * w_cpu / w.readings,
            f"wall {1e3 * wall / -(-n // batch):.0f} ms per transaction, "
            f"{w.readings / wall:,.0f} readings/s, postgres CPU {cpu.get('postgres', 0):.0f} %",
        )
    )
    return out


def stages(env: Env, single: Workload, batch: Workload) -> list[Stage]:
    out = [
        receive(env, single, "v5"),
        receive(env, single, "v311"),
        receive(env, single, "v311", buffered=True),
    ]
    out += validate_and_write(env, single)
    out.append(receive(env, batch, "v311", buffered=True))
    out += validate_and_write(env, batch)
    return out


def stages_table(rows: list[Stage], budget_rate: float | None) -> list[str]:
    lines = [
        "| stage | workload | CPU us per message | CPU us per reading | note |",
        "|---|---|---|---|---|",
        *(
            f"| {s.name} | {s.workload} | {s.us_per_msg:,.0f} | {s.us_per_reading:,.1f} | "
            f"{s.note} |"
            for s in rows
        ),
    ]
    if budget_rate:
        lines += [
            "",
            f"To match mq-bridge's {budget_rate:,.0f} single-reading messages/s in this run, one "
            f"Python process (one core under the GIL) has {1e6 / budget_rate:,.0f} us per "
            "message for all stages together.",
        ]
    return lines
