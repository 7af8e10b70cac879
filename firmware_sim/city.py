"""A synthetic Norwegian town whose true air-quality field is known at any point and time.

Two layers:

- :class:`DemoSite` and :func:`demo_sites`, the small fleet ``luftnett demo`` has always used
  (unchanged);
- :class:`SyntheticCity`, the ground truth for validating maps (issue 8): a 6 km x 5 km town
  in ETRS89 / UTM 32N (EPSG:25832) around 59.74 N, 10.20 E, with roads (polylines with
  traffic volumes) and a background, and the true PM2.5, PM10 (µg/m³) and NO2 (ppb) at any
  ``(x, y, t)`` from :meth:`SyntheticCity.true_field`.

The truth is a sum of separable parts, all deterministic for a seed::

    pm25 = a(t) S(x) + w(t) H(x) + 0.2 p(t) P(x)  + e25  q(t)/u(t) K_pm[sector(t)](x)
    pm10 = pm25 + c(t) S(x)                       + dust(t) q(t)/u(t) K_pm[sector(t)](x)
    no2  = b(t) S(x) + 2.5 p(t) P(x)              + eno2 q(t)/u(t) K_no2[sector(t)](x)

``S`` is a smooth background pattern near 1, ``H`` residential wood-burning hotspots, ``P``
the port (ships at berth, ``p`` larger in calm weather), ``a, b,
c`` regional levels with seasons and long-range episodes, ``w`` evening wood burning in the
cold season, ``q`` the traffic cycle (diurnal, weekly; mean 1 over a week), ``u`` the wind
speed (m/s; dilution) and ``K`` the road kernel: ``sum_roads aadt/10^4 exp(-d / L)``, with
``d`` the distance to each road segment and ``L`` longer on its downwind side (wind from one
of 16 sectors, as a met station reports it). Because the wind direction takes 16 values,
period means are exact sums over sectors (:meth:`SyntheticCity.true_mean`).

Sensors (:class:`Sensor`, :meth:`SyntheticCity.observe`) read the truth through a model of a
low-cost box: an optical PM sensor with gain, offset, hygroscopic growth at high relative
humidity (kappa-Köhler, fog inflates readings), a gain drift per day and noise; an
electrochemical NO2 cell with offset drift; outages. Time is seconds since the Unix epoch (UTC);
local time is CET (UTC+1, summer time ignored). Pure numpy.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CITY_EPSG",
    "POLLUTANTS",
    "DemoSite",
    "Field",
    "Observations",
    "Road",
    "Sensor",
    "SyntheticCity",
    "Weather",
    "demo_sites",
]

# -- the demo fleet (kept as it was) ---------------------------------------------------------
_BASE = {"traffic": 14.0, "school": 9.0, "residential": 7.0, "background": 5.0}
_TYPES = ("traffic", "school", "residential", "background", "traffic")


@dataclass(frozen=True, slots=True)
class DemoSite:
    site_id: str
    device_id: str
    name: str
    site_type: str
    lat: float
    lon: float
    serial: bytes

    def pm(self, rng: random.Random) -> tuple[float, float]:
        """(PM2.5, PM10) in µg/m³ now."""
        hour = datetime.now(UTC).hour + 1  # Europe/Oslo, roughly
        rush = math.exp(-((hour - 8) ** 2) / 4) + math.exp(-((hour - 16) ** 2) / 5)
        base = _BASE[self.site_type] * (1 + (0.8 * rush if self.site_type == "traffic" else 0.2))
        pm25 = max(0.0, rng.gauss(base, base * 0.15))
        return pm25, pm25 * rng.uniform(1.4, 1.9)


def demo_sites(n: int) -> list[DemoSite]:
    """``n`` sites around a small Norwegian town centre (59.74 N, 10.20 E)."""
    rng = random.Random(7)
    out = []
    for i in range(n):
        kind = _TYPES[i % len(_TYPES)]
        out.append(
            DemoSite(
                site_id=f"site-{i + 1:03d}",
                device_id=f"demo-{i + 1:03d}",
                name=f"{kind.title()} site {i + 1}",
                site_type=kind,
                lat=59.74 + rng.uniform(-0.02, 0.02),
                lon=10.20 + rng.uniform(-0.04, 0.04),
                serial=bytes([0xA0 + (i >> 8) % 16, i % 256]),
            )
        )
    return out


# -- the synthetic city ------------------------------------------------------------------------
Array = NDArray[np.float64]
Pollutant = Literal["pm25", "pm10", "no2"]
POLLUTANTS: tuple[Pollutant, ...] = ("pm25", "pm10", "no2")
CITY_EPSG = 25832
X0_M, Y0_M = 564_500.0, 6_620_500.0  # south-west corner; 59.74 N, 10.20 E is near the centre
WIDTH_M, HEIGHT_M = 6000.0, 5000.0
SECTORS = 16
MAJOR_AADT = 10_000  # vehicles/day: a "major road"
_L_PM_M, _L_NO2_M = 110.0, 70.0  # road-plume decay lengths (upwind side shorter, downwind longer)
_LOCAL_OFFSET_S = 3600  # CET
_ORIGIN = np.array([X0_M, Y0_M])
_E_PM25, _E_NO2 = 0.9, 6.0  # road increments per unit kernel and q/u (µg/m³, ppb)


@dataclass(frozen=True, slots=True)
class Road:
    """A polyline (local metres from the south-west corner) with annual daily traffic."""

    name: str
    points: tuple[tuple[float, float], ...]
    aadt: int  # vehicles per day

    @property
    def major(self) -> bool:
        return self.aadt >= MAJOR_AADT


ROADS: tuple[Road, ...] = (
    Road("E18", ((0, 700), (1800, 1000), (3400, 900), (4600, 1300), (6000, 1500)), 42_000),
    Road("Riksvei 23", ((2700, 0), (2900, 1000), (3100, 2300), (3300, 3600), (3200, 5000)), 16_000),
    Road("Elvegata", ((0, 2600), (1500, 2450), (3000, 2350), (4500, 2550), (6000, 2800)), 12_000),
    Road(
        "Ringveien", ((1900, 2400), (2100, 3700), (3300, 4100), (4400, 3500), (4500, 2550)), 7_000
    ),
    Road("Skolegata", ((1200, 2450), (1300, 4200)), 3_000),
    Road("Havneveien", ((4200, 1200), (4500, 2550)), 5_000),
)
# residential wood-burning hotspots: (x, y, radius m, weight); the port (ships at berth)
_WOOD = ((1100.0, 3700.0, 450.0, 1.0), (4900.0, 4100.0, 350.0, 0.7))
_PORT = (3600.0, 800.0, 450.0)


@dataclass(frozen=True, slots=True)
class Field:
    """True concentrations: PM2.5 and PM10 in µg/m³, NO2 in ppb."""

    pm25: Array
    pm10: Array
    no2: Array

    def get(self, pollutant: str) -> Array:
        out: Array = getattr(self, pollutant)
        return out


@dataclass(frozen=True, slots=True)
class Weather:
    """Wind direction (degrees, from; one of 16 sectors), speed (m/s), RH (%), fog flag."""

    wind_from_deg: Array
    wind_ms: Array
    rh_pct: Array
    fog: NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Sensor:
    """A sensor box at ``(x_m, y_m)`` (EPSG:25832) and its error model.

    Optical PM: ``obs = (gain (1 + drift_per_day days) true + offset) growth(RH) + noise``;
    NO2 cell: ``obs = no2_gain true + no2_offset + no2_drift_per_day days + noise``.
    ``kind`` "reference" boxes have no RH growth, drift or outages.
    """

    sensor_id: str
    x_m: float
    y_m: float
    kind: Literal["lowcost", "reference"]
    site_type: str
    gain: float
    offset_ugm3: float
    kappa: float
    drift_per_day: float
    noise_ugm3: float
    no2_gain: float
    no2_offset_ppb: float
    no2_drift_ppb_per_day: float
    no2_noise_ppb: float
    outages: tuple[tuple[float, float], ...]  # (start, end) epoch seconds


@dataclass(frozen=True, slots=True)
class Observations:
    """Readings of ``sensors`` at ``t`` (epoch s), arrays (n_sensors, n_times); NaN = outage."""

    t: Array
    pm25: Array
    pm10: Array
    no2: Array
    rh_pct: Array

    def get(self, pollutant: str) -> Array:
        out: Array = getattr(self, pollutant)
        return out


def _seg_distance(px: Array, py: Array, a: Array, b: Array) -> tuple[Array, Array]:
    """Distance (m) from points to segment a-b, and which side (+1 left of a->b, -1 right)."""
    d = b - a
    t = np.clip(((px - a[0]) * d[0] + (py - a[1]) * d[1]) / float(d @ d), 0.0, 1.0)
    cx, cy = a[0] + t * d[0], a[1] + t * d[1]
    side = np.sign(d[0] * (py - a[1]) - d[1] * (px - a[0]))
    return np.hypot(px - cx, py - cy), np.where(side == 0, 1.0, side)


class SyntheticCity:
    """The town and its true field; deterministic for ``seed`` (see the module docstring)."""

    epsg = CITY_EPSG
    roads = ROADS

    def __init__(self, seed: int = 8) -> None:
        self.seed = seed
        rng = np.random.default_rng(seed)
        # smooth background pattern: 30 cosine waves, wavelengths 1.5-6 km
        k = rng.uniform(2 * np.pi / 6000, 2 * np.pi / 1500, 30)
        ang = rng.uniform(0, np.pi, 30)
        self._waves = (np.column_stack([k * np.cos(ang), k * np.sin(ang)]), rng.uniform(0, 6.3, 30))
        # slow weather noise: sums of sinusoids with periods of 1.5-12 days
        self._wx = {
            name: (rng.uniform(1.5, 12, 6) * 86400.0, rng.uniform(0, 2 * np.pi, 6))
            for name in ("dir", "speed", "episode", "dry")
        }
        year0 = 1_704_067_200.0  # 2024-01-01T00:00Z; fog episodes repeat each year
        starts = np.sort(rng.uniform(0, 365 * 86400, 14))
        self._fog = [(s, s + rng.uniform(6, 20) * 3600.0) for s in starts]
        self._year0 = year0
        self._qnorm = 1.0
        week = np.arange(0, 7 * 86400, 3600.0) + 1800
        self._qnorm = float(np.mean(self.traffic(week + 4 * 86400)))  # 1970-01-05 is a Monday

    # -- geometry -----------------------------------------------------------------------------
    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in metres, EPSG:25832."""
        return (X0_M, Y0_M, X0_M + WIDTH_M, Y0_M + HEIGHT_M)

    def _segments(self) -> list[tuple[Array, Array, float]]:
        out = []
        for road in self.roads:
            pts = np.asarray(road.points, dtype=np.float64) + _ORIGIN
            out += [(pts[i], pts[i + 1], road.aadt / 1e4) for i in range(len(pts) - 1)]
        return out

    def covariates(self, x_m: ArrayLike, y_m: ArrayLike) -> tuple[Array, Array]:
        """(distance to the nearest major road in m, traffic closeness ``max over road
        segments of aadt/1e4 exp(-d / 100 m)``) at the points: drift covariates for a map."""
        px, py = np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64)
        dmin = np.full(np.broadcast(px, py).shape, np.inf)
        closeness = np.zeros_like(dmin)
        for road in self.roads:
            pts = np.asarray(road.points, dtype=np.float64) + _ORIGIN
            for i in range(len(pts) - 1):
                d, _ = _seg_distance(px, py, pts[i], pts[i + 1])
                closeness = np.maximum(closeness, road.aadt / 1e4 * np.exp(-d / 100.0))
                if road.major:
                    dmin = np.minimum(dmin, d)
        return dmin, closeness

    def covariate_grid(self, cell_m: float = 100.0) -> tuple[Array, Array, Array]:
        """Traffic closeness on a grid of nodes covering the town with a cell of margin:
        ``xs`` (nx,), ``ys`` (ny,), ``values`` (ny, nx), for a kriging drift grid."""
        xmin, ymin, xmax, ymax = self.bbox
        xs = np.arange(xmin - cell_m, xmax + 1.5 * cell_m, cell_m)
        ys = np.arange(ymin - cell_m, ymax + 1.5 * cell_m, cell_m)
        gx, gy = np.meshgrid(xs, ys)
        return xs, ys, self.covariates(gx, gy)[1]

    def _kernel(self, px: Array, py: Array, length_m: float, weights: Array) -> Array:
        """``sum_s weights[s] K_s``: the road kernel for wind sectors ``s`` (16 weights)."""
        out = np.zeros(px.shape)
        to = np.deg2rad(np.arange(SECTORS) * 360.0 / SECTORS + 180.0)  # direction blown to
        active = [s for s in range(SECTORS) if weights[s] != 0]
        for a, b, w in self._segments():
            d, side = _seg_distance(px, py, a, b)
            d = np.maximum(d - 8.0, 0.0)  # d = 0 at the kerb, about 8 m from the lane centre
            seg = b - a
            nx, ny = -seg[1] / np.hypot(*seg), seg[0] / np.hypot(*seg)  # left of a->b
            for s in active:
                downwind = np.clip(side * (nx * np.sin(to[s]) + ny * np.cos(to[s])), 0.0, 1.0)
                out += weights[s] * w * np.exp(-d / (length_m * (0.6 + 1.6 * downwind)))
        return out

    def _spatial(self, px: Array, py: Array) -> tuple[Array, Array, Array]:
        w, ph = self._waves
        lx, ly = px - X0_M, py - Y0_M
        arg = lx[..., None] * w[:, 0] + ly[..., None] * w[:, 1] + ph
        smooth = 1.0 + 0.12 * np.sqrt(2 / 30) * np.cos(arg).sum(axis=-1) + 0.15 * (ly / HEIGHT_M)
        hot = np.zeros_like(px)
        for hx, hy, r, wt in _WOOD:
            hot += wt * np.exp(-((lx - hx) ** 2 + (ly - hy) ** 2) / (2 * r * r))
        hx, hy, r = _PORT
        port = np.exp(-((lx - hx) ** 2 + (ly - hy) ** 2) / (2 * r * r))
        return smooth, hot, port

    # -- time -----------------------------------------------------------------------------------
    def _noise(self, name: str, t: Array) -> Array:
        period, phase = self._wx[name]
        out: Array = np.sin(2 * np.pi * t[..., None] / period + phase).sum(axis=-1) / 6**0.5
        return out  # roughly N(0, 0.5)

    @staticmethod
    def _clock(t: Array) -> tuple[Array, Array, Array]:
        """Local hour of day (float), day of week (0 = Monday), day of year (0..365)."""
        local = t + _LOCAL_OFFSET_S
        hour = (local % 86400) / 3600.0
        dow = ((local // 86400) + 3) % 7  # 1970-01-01 was a Thursday
        doy = (local % (365.2425 * 86400)) / 86400.0
        return hour, dow, doy

    def traffic(self, t: ArrayLike) -> Array:
        """Traffic relative to the weekly mean (1): rush hours on weekdays, flat weekends."""
        hour, dow, _ = self._clock(np.asarray(t, dtype=np.float64))
        weekday = (
            0.25
            + 1.5 * np.exp(-((hour - 7.5) ** 2) / 1.5)
            + 1.3 * np.exp(-((hour - 15.8) ** 2) / 3.0)
            + 0.8 * ((hour > 9) & (hour < 15))
        )
        weekend = 0.2 + 0.9 * np.exp(-((hour - 13.0) ** 2) / 12.0)
        q = np.where(dow < 5, weekday, np.where(dow == 5, 1.0, 0.8) * weekend)
        return np.asarray(q / self._qnorm, dtype=np.float64)

    def weather(self, t: ArrayLike) -> Weather:
        """Wind (from one of 16 sectors; south-west prevails), speed, RH and fog at ``t``."""
        tt = np.asarray(t, dtype=np.float64)
        hour, _, doy = self._clock(tt)
        direction = 215.0 + 160.0 * self._noise("dir", tt)
        sector = np.round(direction / (360.0 / SECTORS)) % SECTORS
        speed = 3.2 + 2.4 * self._noise("speed", tt) + 1.0 * np.sin((hour - 9) / 24 * 2 * np.pi)
        speed = np.clip(speed, 0.6, None)
        rh = 78.0 + 12.0 * np.cos((hour - 4) / 24 * 2 * np.pi) + 6 * np.cos(doy / 365 * 2 * np.pi)
        rh = rh - 12.0 * np.clip(self._noise("dry", tt), 0, None)
        fog = np.zeros(tt.shape, dtype=bool)
        yt = (tt - self._year0) % (365 * 86400)
        for s, e in self._fog:
            fog |= (yt >= s) & (yt < e)
        rh = np.where(fog, 98.5, np.clip(rh, 30.0, 95.0))
        return Weather(sector * 360.0 / SECTORS, speed, rh, fog)

    def _levels(self, t: Array) -> dict[str, Array]:
        """Time factors: background levels a, b, c; wood burning w; road dust; q/u; sector."""
        hour, _, doy = self._clock(t)
        wx = self.weather(t)
        winter = 0.5 + 0.5 * np.cos(doy / 365 * 2 * np.pi)  # 1 in January, 0 in July
        episode = np.clip(self._noise("episode", t) - 0.45, 0, None) * 18.0  # long-range PM
        stagnation = 3.0 / (wx.wind_ms + 1.0)
        evening = np.exp(-((hour - 20.0) ** 2) / 6.0) + 0.4 * np.exp(-((hour - 7.0) ** 2) / 3.0)
        spring = np.exp(-((doy - 85.0) ** 2) / (2 * 22.0**2))  # studded-tyre dust, Mar-Apr
        dry = np.clip(0.5 - self._noise("dry", t), 0, 1) * ~wx.fog
        return {
            "a": 3.5 + 2.0 * winter + episode + 1.0 * stagnation,
            "b": 4.0 + 3.0 * winter + 2.0 * stagnation,
            "c": 3.0 + 2.0 * (1 - winter) + 0.5 * episode,
            "w": 9.0 * winter * evening * stagnation,
            "port": 3.0 * stagnation,
            "dust": 1.5 + 40.0 * spring * dry,
            "qu": self.traffic(t) / wx.wind_ms,
            "sector": wx.wind_from_deg / (360.0 / SECTORS),
        }

    # -- the truth ------------------------------------------------------------------------------
    def true_field(self, x_m: ArrayLike, y_m: ArrayLike, t: ArrayLike) -> Field:
        """True PM2.5, PM10 (µg/m³) and NO2 (ppb) at ``(x, y)`` (m, EPSG:25832) and ``t``
        (epoch seconds, UTC); the three broadcast together (sites x times is cheap: the
        spatial parts are computed per place, the time parts per time)."""
        px, py = np.broadcast_arrays(np.asarray(x_m, np.float64), np.asarray(y_m, np.float64))
        tt = np.asarray(t, dtype=np.float64)
        shape = np.broadcast_shapes(px.shape, tt.shape)
        lv = {k: v.reshape(tt.shape) for k, v in self._levels(tt.ravel()).items()}
        smooth, hot, port = self._spatial(px, py)
        kpm, kno2 = np.zeros(shape), np.zeros(shape)
        sector = lv["sector"].astype(int)
        for s in np.unique(sector):
            onehot = np.eye(SECTORS)[s]
            here = sector == s
            kpm = np.where(here, self._kernel(px, py, _L_PM_M, onehot), kpm)
            kno2 = np.where(here, self._kernel(px, py, _L_NO2_M, onehot), kno2)
        pm25 = lv["a"] * smooth + lv["w"] * hot + 0.2 * lv["port"] * port
        pm25 = pm25 + _E_PM25 * lv["qu"] * kpm
        pm10 = pm25 + lv["c"] * smooth + lv["dust"] * lv["qu"] * kpm
        no2 = lv["b"] * smooth + 2.5 * lv["port"] * port + _E_NO2 * lv["qu"] * kno2
        return Field(*(np.broadcast_to(v, shape).copy() for v in (pm25, pm10, no2)))

    def true_mean(self, x_m: ArrayLike, y_m: ArrayLike, start: float, end: float) -> Field:
        """Exact mean of the true field over the hours of ``[start, end)`` (epoch s), taken at
        each hour's midpoint, at points ``(x, y)``."""
        t = hours(start, end) + 1800.0
        if t.size == 0:
            raise ValueError(f"empty period: {start} .. {end}")
        px, py = np.broadcast_arrays(np.asarray(x_m, np.float64), np.asarray(y_m, np.float64))
        fx, fy = px.ravel(), py.ravel()
        lv = self._levels(t)
        sector = lv["sector"].astype(int)
        w_pm = np.bincount(sector, lv["qu"], SECTORS) / t.size
        w_dust = np.bincount(sector, lv["dust"] * lv["qu"], SECTORS) / t.size
        smooth, hot, port = self._spatial(fx, fy)
        pm25 = lv["a"].mean() * smooth + lv["w"].mean() * hot + 0.2 * lv["port"].mean() * port
        pm25 = pm25 + _E_PM25 * self._kernel(fx, fy, _L_PM_M, w_pm)
        pm10 = pm25 + lv["c"].mean() * smooth + self._kernel(fx, fy, _L_PM_M, w_dust)
        no2 = lv["b"].mean() * smooth + 2.5 * lv["port"].mean() * port
        no2 = no2 + _E_NO2 * self._kernel(fx, fy, _L_NO2_M, w_pm)
        shape = px.shape
        return Field(pm25.reshape(shape), pm10.reshape(shape), no2.reshape(shape))

    # -- sensors --------------------------------------------------------------------------------
    def place_sensors(self, n: int, *, seed: int | None = None, reference: int = 1) -> list[Sensor]:
        """``n`` sensor boxes: about a third at kerbs of major roads, the rest spread over the
        town; the first ``reference`` are reference-grade (no RH growth, drift or outage)."""
        rng = np.random.default_rng(self.seed * 1000 + 17 if seed is None else seed)
        xmin, ymin, xmax, ymax = self.bbox
        segs = [(a, b) for road in self.roads if road.major for a, b in _pairs(road)]
        out = []
        for i in range(n):
            if i % 3 == 1:
                a, b = segs[rng.integers(len(segs))]
                f = rng.uniform(0.05, 0.95)
                seg = b - a
                normal = np.array([-seg[1], seg[0]]) / np.hypot(*seg)
                x, y = a + f * seg + normal * rng.choice([-1, 1]) * rng.uniform(10, 60)
                site_type = "traffic"
            else:
                x, y = rng.uniform(xmin + 200, xmax - 200), rng.uniform(ymin + 200, ymax - 200)
                site_type = ("residential", "school", "background")[i % 3]
            ref = i < reference
            t_out = rng.uniform(1.70e9, 1.80e9, 2)
            out.append(
                Sensor(
                    sensor_id=f"city-{i + 1:03d}",
                    x_m=float(np.clip(x, xmin, xmax)),
                    y_m=float(np.clip(y, ymin, ymax)),
                    kind="reference" if ref else "lowcost",
                    site_type="reference" if ref else site_type,
                    gain=1.0 if ref else float(rng.uniform(1.1, 1.7)),
                    offset_ugm3=0.0 if ref else float(rng.normal(0.0, 1.0)),
                    kappa=0.0 if ref else float(rng.uniform(0.1, 0.25)),
                    drift_per_day=0.0 if ref else float(rng.uniform(0.0, 0.0004)),
                    noise_ugm3=0.3 if ref else float(rng.uniform(1.0, 2.5)),
                    no2_gain=1.0 if ref else float(rng.uniform(0.8, 1.2)),
                    no2_offset_ppb=0.0 if ref else float(rng.normal(0.0, 3.0)),
                    no2_drift_ppb_per_day=0.0 if ref else float(rng.normal(0.0, 0.01)),
                    no2_noise_ppb=0.5 if ref else float(rng.uniform(2.0, 4.0)),
                    outages=() if ref else tuple((s, s + rng.uniform(1, 6) * 86400) for s in t_out),
                )
            )
        return out

    def observe(
        self, sensors: list[Sensor], t: ArrayLike, *, installed: float | None = None
    ) -> Observations:
        """What each sensor reads at times ``t`` (epoch s). Drift counts days since
        ``installed`` (default: the first time). Noise is deterministic for the city's seed,
        the sensor and the time values."""
        tt = np.atleast_1d(np.asarray(t, dtype=np.float64))
        xs = np.array([s.x_m for s in sensors])[:, None]
        ys = np.array([s.y_m for s in sensors])[:, None]
        truth = self.true_field(xs, ys, tt[None, :])
        rh = np.broadcast_to(self.weather(tt).rh_pct, truth.pm25.shape)
        days = (tt - (tt.min() if installed is None else installed))[None, :] / 86400.0
        p = {k: np.array([getattr(s, k) for s in sensors])[:, None] for k in _ERROR_PARAMS}
        rng = np.random.default_rng([self.seed, int(tt[0]) % 2**31, tt.size, len(sensors)])
        aw = np.clip(rh, 0, 99.0) / 100.0
        growth = 1.0 + p["kappa"] / 1.65 / (1.0 / aw - 1.0)  # kappa-Köhler (Crilley et al. 2018)
        gain = p["gain"] * (1.0 + p["drift_per_day"] * days)
        noise = p["noise_ugm3"] * rng.standard_normal((2, *truth.pm25.shape))
        pm25 = np.clip((gain * truth.pm25 + p["offset_ugm3"]) * growth + noise[0], 0, None)
        pm10 = np.clip((gain * truth.pm10 + p["offset_ugm3"]) * growth + 1.5 * noise[1], 0, None)
        pm10 = np.maximum(pm10, pm25)
        no2 = (
            p["no2_gain"] * truth.no2
            + p["no2_offset_ppb"]
            + p["no2_drift_ppb_per_day"] * days
            + p["no2_noise_ppb"] * rng.standard_normal(truth.no2.shape)
        )
        down = np.zeros(truth.pm25.shape, dtype=bool)
        for i, s in enumerate(sensors):
            for a, b in s.outages:
                down[i] |= (tt >= a) & (tt < b)
        nan = np.where(down, np.nan, 1.0)
        return Observations(tt, pm25 * nan, pm10 * nan, no2 * nan, rh * nan)


_ERROR_PARAMS = (
    "gain",
    "offset_ugm3",
    "kappa",
    "drift_per_day",
    "noise_ugm3",
    "no2_gain",
    "no2_offset_ppb",
    "no2_drift_ppb_per_day",
    "no2_noise_ppb",
)


def _pairs(road: Road) -> list[tuple[Array, Array]]:
    pts = np.asarray(road.points, dtype=np.float64) + _ORIGIN
    return [(pts[i], pts[i + 1]) for i in range(len(pts) - 1)]


def hours(start: float, end: float) -> Array:
    """Starts of the whole hours in ``[start, end)`` (epoch s; start rounded up to an hour)."""
    first = math.ceil(start / 3600.0) * 3600.0
    return np.arange(first, end, 3600.0)
