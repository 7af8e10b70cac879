"""The scheduled faults of a soak run, as actions on the running system.

:func:`build_schedule` turns :func:`~luftnett.soak.profile.fault_plan` into
``(simulated time, target, label, action)`` items; the runner fires each when the simulated
clock reaches it, on a thread per target, and logs the detail the action returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from luftnett.soak.devices import SimDevice
from luftnett.soak.profile import cycles, fault_plan

if TYPE_CHECKING:
    from luftnett.soak.runner import SoakRun

__all__ = ["Item", "build_schedule"]

#: (simulated UNIX time, target, label, action returning a detail for the log)
Item = tuple[float, str, str, Callable[[], str]]


def build_schedule(soak: SoakRun) -> list[Item]:
    """(simulated time, target, label, action returning a detail) in time order.

    Actions on one target run in order on a thread of that target; a collector restart
    that takes seconds does not hold up the broker's outage."""
    plan = fault_plan(cycles(soak.p.hours)[1])
    sim = soak.fleet.sim
    by_role = {r: [d for d in sim if d.spec.role == r] for r in {d.spec.role for d in sim}}
    at = soak.sim_start
    items: list[Item] = []

    def add(hours: float, label: str, action: Callable[[], str], target: str = "misc") -> None:
        items.append((at + hours * 3600, target, label, action))

    def kill_collector() -> str:
        soak.collector.kill()
        return f"subscribed again after {soak.collector.start():.1f} s"

    def edge_kill() -> str:
        assert soak.fleet.victim is not None
        rec = soak.fleet.victim.kill()
        time.sleep(1.0)
        soak.fleet.victim.start()
        return (
            f"next_seq {rec['next_seq']}, unsent {rec['unsent']}, uncommitted WAL frames "
            f"{rec['uncommitted_wal_frames']}; restarted on the same outbox"
        )

    def switch(devs: list[SimDevice], attr: str, on: bool) -> Callable[[], str]:
        def act() -> str:
            for d in devs:
                setattr(d.emu, attr, on)
            return ", ".join(d.spec.device_id for d in devs) or "no such device"

        return act

    def disk(on: bool) -> str:
        for d in by_role.get("disk-full", []):
            d.fill_disk() if on else d.free_disk()
        return ", ".join(d.spec.device_id for d in by_role.get("disk-full", []))

    def rogue() -> str:
        sent = soak.tap.publish_rogue(soak.run_id)
        for k, v in sent.items():
            soak.expected_quarantine[k] = soak.expected_quarantine.get(k, 0) + v
        return f"{sum(sent.values())} payloads"

    def pty_unplug(on: bool) -> str:
        if len(soak.fleet.pty) > 1:
            soak.fleet.pty[1][2].unplugged = on
            return soak.fleet.pty[1][1].cfg.device_id
        return "no pty device"

    def pg(up: bool) -> str:
        soak.pg.start() if up else soak.pg.stop()
        return soak.db_url.rsplit("@", 1)[-1]

    def broker(up: bool) -> str:
        soak.broker.start() if up else soak.broker.stop()
        return soak.mqtt_url

    unplug, stuck = by_role.get("unplugged", []), by_role.get("stuck", [])
    n_cycles, cycle_h = cycles(soak.p.hours)
    for k in range(n_cycles):  # the same faults once a simulated day
        base = k * cycle_h
        add(base + plan.collector_kill_h, "collector SIGKILL", kill_collector, "collector")
        add(base + plan.broker_stop_h, "broker stopped", lambda: broker(False), "broker")
        up = base + plan.broker_stop_h + plan.broker_down_h
        add(up, "broker started", lambda: broker(True), "broker")
        add(base + plan.disk_full_h[0], "disk full", lambda: disk(True))
        add(base + plan.disk_full_h[1], "disk freed", lambda: disk(False))
        add(base + plan.pg_restart_h, "PostgreSQL stopped", lambda: pg(False), "pg")
        add(
            base + plan.pg_restart_h + plan.pg_down_h,
            "PostgreSQL started",
            lambda: pg(True),
            "pg",
        )
        add(base + plan.rogue_h, "malformed payloads published", rogue)
        add(base + plan.unplug_h[0], "sensors unplugged", switch(unplug, "unplugged", True))
        add(base + plan.unplug_h[1], "sensors plugged in", switch(unplug, "unplugged", False))
        add(base + plan.pty_unplug_h[0], "pty sensor unplugged", lambda: pty_unplug(True))
        add(base + plan.pty_unplug_h[1], "pty sensor plugged in", lambda: pty_unplug(False))
        add(base + plan.stuck_h[0], "sensor stuck", switch(stuck, "stuck", True))
        add(base + plan.stuck_h[1], "sensor unstuck", switch(stuck, "stuck", False))
        for h in plan.edge_kills_h:
            add(base + h, "edge process SIGKILL", edge_kill, "edge")
        for h in plan.duplicates_h:
            add(
                base + h,
                "sampled messages republished",
                lambda: f"{soak.tap.republish():,} readings",
            )
    return sorted(items, key=lambda i: i[0])
