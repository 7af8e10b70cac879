"""What a soak run simulates: the fleet, its roles, the clock and the fault schedule.

A :class:`Profile` fixes the size (devices, simulated hours) and the compression (``speed``:
simulated seconds per real second). :func:`fleet_plan` turns it into one :class:`DeviceSpec`
per simulated device, each with its model and the faults it carries; :func:`fault_plan` gives
the scheduled system faults in simulated hours. Both are pure, so the docs and the run agree.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from luftnett.edge.outbox import DEFAULT_MAX_ROWS

__all__ = [
    "MODEL_MIX",
    "PROFILES",
    "DeviceSpec",
    "FaultPlan",
    "Profile",
    "cycles",
    "fault_plan",
    "fleet_plan",
]

#: one cycle of the fleet's sensor models: 40 % SDS011, 25 % PMS5003, 20 % SPS30, 15 % DGS-NO2
MODEL_MIX = (
    "sds011", "pms5003", "sps30", "sds011", "dgs-no2",
    "sds011", "pms5003", "sps30", "sds011", "pms5003",
    "sds011", "dgs-no2", "sps30", "sds011", "pms5003",
    "sds011", "sps30", "dgs-no2", "sds011", "pms5003",
)  # fmt: skip
#: the models of the devices read through real pseudo-terminals (real time)
PTY_MODELS = ("sds011", "pms5003", "sps30", "dgs-no2")


@dataclass(frozen=True, slots=True)
class Profile:
    """Size and pace of a run. ``speed``: simulated seconds per real second."""

    name: str
    devices: int  # devices on the simulated clock
    hours: float  # simulated duration
    speed: float = 720.0  # one simulated hour in 5 real seconds
    window_s: float = 300.0  # averaging window of the simulated devices
    frame_every_s: float = 60.0  # one sensor frame (or poll) per simulated minute
    tick_s: float = 30.0  # the simulated clock advances in these steps
    pty_devices: int = len(PTY_MODELS)  # real-time devices on real ptys through pyserial
    pty_window_s: float = 5.0
    shards: int = 8  # threads driving the simulated devices (outbox fsyncs overlap)
    seed: int = 1

    def with_overrides(
        self, devices: int | None = None, hours: float | None = None, speed: float | None = None
    ) -> Profile:
        return replace(
            self,
            devices=self.devices if devices is None else devices,
            hours=self.hours if hours is None else hours,
            speed=self.speed if speed is None else speed,
        )


PROFILES: dict[str, Profile] = {
    "short": Profile("short", devices=20, hours=24.0),
    "long": Profile("long", devices=100, hours=168.0),
}


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One simulated device and the faults it carries for the whole run."""

    device_id: str
    model: str
    level: float  # typical PM2.5 (µg/m³) or NO2 (ppb)
    seed: int
    role: str = "clean"  # the scheduled fault it stands for, see fleet_plan
    clock_offset_s: float = 0.0  # device clock minus true time
    garbage: bool = False  # random bytes on the wire before ~30 % of its output
    corrupt: bool = False  # ~5 % of its frames with a wrong checksum (a spoilt field: DGS)
    outbox_max_rows: int = DEFAULT_MAX_ROWS
    hold: bool = False  # published through the reordering relay (out-of-order delivery)


#: roles given to devices 1, 2, ... (device 0 and the rest stay clean of scheduled faults)
ROLES = (
    "outbox-bound",  # outbox bounded to a few readings: the broker outage overflows it
    "disk-full",  # the outbox's disk is full during the broker outage (SQLITE_FULL)
    "clock-ahead",  # device clock 3 h fast: the collector flags what lies in its future
    "clock-behind",  # device clock 2 h slow: nothing can tell (stored as sent)
    "stuck",  # the sensor repeats one value for hours: the collector's stuck check
    "reordered",  # its messages reach the collector shuffled, through a relay
    "unplugged",  # the sensor is unplugged for hours: no frames, no readings
    "unplugged",
)


def fleet_plan(profile: Profile, run_id: str) -> list[DeviceSpec]:
    """The simulated devices: models from :data:`MODEL_MIX`, roles from :data:`ROLES`."""
    rng = random.Random(profile.seed)
    out = []
    for i in range(profile.devices):
        model = MODEL_MIX[i % len(MODEL_MIX)]
        level = rng.uniform(10, 40) if model == "dgs-no2" else rng.uniform(4, 25)
        spec = DeviceSpec(
            device_id=f"{run_id}-{i:03d}-{model}",
            model=model,
            level=round(level, 1),
            seed=profile.seed * 1000 + i,
            garbage=i % 5 == 2,
            corrupt=i % 7 == 3,
        )
        role = ROLES[i - 1] if 1 <= i <= len(ROLES) else "clean"
        if role == "outbox-bound":  # half of what the broker outage piles up
            outage_s = fault_plan(cycles(profile.hours)[1]).broker_down_h * 3600
            spec = replace(spec, outbox_max_rows=max(2, int(outage_s / profile.window_s / 2)))
        elif role == "clock-ahead":
            spec = replace(spec, clock_offset_s=3 * 3600.0)
        elif role == "clock-behind":
            spec = replace(spec, clock_offset_s=-2 * 3600.0)
        elif role == "reordered":
            spec = replace(spec, hold=True)
        out.append(replace(spec, role=role))
    return out


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """When each scheduled fault happens, in simulated hours from the start."""

    collector_kill_h: float
    broker_stop_h: float
    broker_down_h: float  # an hour of simulated time
    disk_full_h: tuple[float, float]  # from, to
    edge_kills_h: tuple[float, ...]
    pg_restart_h: float
    pg_down_h: float
    rogue_h: float
    unplug_h: tuple[float, float]
    pty_unplug_h: tuple[float, float]
    stuck_h: tuple[float, float]
    duplicates_h: tuple[float, ...]

    def rows(self) -> list[tuple[float, str]]:
        """(simulated hour, what) in time order: the schedule as docs/reliability.md shows it."""
        rows = [
            (self.collector_kill_h, "collector SIGKILLed, restarted at once (same session)"),
            (self.broker_stop_h, f"broker stopped for {self.broker_down_h:g} h (simulated)"),
            (self.broker_stop_h + self.broker_down_h, "broker started again, same port"),
            (self.disk_full_h[0], "disk-full device: outbox disk full (SQLITE_FULL)"),
            (self.disk_full_h[1], "disk-full device: disk space freed"),
            (self.pg_restart_h, f"PostgreSQL stopped for {self.pg_down_h * 60:g} min (simulated)"),
            (self.pg_restart_h + self.pg_down_h, "PostgreSQL started again"),
            (self.rogue_h, "malformed payloads published (expected in quarantine)"),
            (self.unplug_h[0], "two sensors unplugged"),
            (self.unplug_h[1], "unplugged sensors back"),
            (self.pty_unplug_h[0], "a pty sensor unplugged"),
            (self.pty_unplug_h[1], "the pty sensor back"),
            (self.stuck_h[0], "stuck sensor starts repeating one value"),
            (self.stuck_h[1], "stuck sensor recovers"),
        ]
        kill = "edge agent process SIGKILLed mid-write, restarted"
        rows += [(h, kill) for h in self.edge_kills_h]
        rows += [(h, "sampled messages published again, shuffled") for h in self.duplicates_h]
        return sorted(rows)


def cycles(hours: float) -> tuple[int, float]:
    """(number, length in hours) of the fault cycles of a run: one a simulated day."""
    n = max(1, round(hours / 24))
    return n, hours / n


def fault_plan(hours: float) -> FaultPlan:
    """The fault schedule of one cycle of ``hours`` simulated hours (fractions of it)."""
    h = hours
    broker_down = min(1.0, 0.1 * h)
    stuck_len = min(4.0, 0.3 * h)
    unplug_len = min(3.0, 0.15 * h)
    return FaultPlan(
        collector_kill_h=0.15 * h,
        broker_stop_h=0.25 * h,
        broker_down_h=broker_down,
        disk_full_h=(0.25 * h, 0.25 * h + 1.5 * broker_down),
        edge_kills_h=(0.35 * h, 0.6 * h, 0.8 * h),
        pg_restart_h=0.45 * h,
        pg_down_h=min(10 / 60, 0.02 * h),
        rogue_h=0.5 * h,
        unplug_h=(0.1 * h, 0.1 * h + unplug_len),
        pty_unplug_h=(0.4 * h, 0.4 * h + broker_down),
        stuck_h=(0.55 * h, 0.55 * h + stuck_len),
        duplicates_h=(0.7 * h, 0.95 * h),
    )
