"""Devices, readings, profiles, exceedances, index, exposure, auth and errors, over HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from luftnett.settings import DEMO_API_KEY

YEAR = 2025


class _Http:
    """httpx with a long timeout: the test machine is shared and may be loaded."""

    @staticmethod
    def get(url: str, **kw: object) -> httpx.Response:
        return httpx.get(url, timeout=120, **kw)  # type: ignore[arg-type]

    @staticmethod
    def post(url: str, **kw: object) -> httpx.Response:
        return httpx.post(url, timeout=120, **kw)  # type: ignore[arg-type]


_http = _Http()


def _load(
    url: str,
    device: str,
    site: str,
    start: datetime,
    end: datetime,
    pm10: float,
    step_min: int = 10,
) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO sites (site_id, name, site_type, lat, lon) "
            "VALUES (%s, %s, 'school', 59.75, 10.21)",
            (site, f"<b>School</b> {site}"),
        )
        conn.execute(
            "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (device,)
        )
        conn.execute(
            "INSERT INTO deployments (site_id, device_id, valid_from) VALUES (%s, %s, %s)",
            (site, device, start - timedelta(days=1)),
        )
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, pm10_ugm3, no2_ppb, flags, schema_version) "
            "SELECT %(d)s, row_number() OVER (), t, %(w)s, 10, 'sds011', %(v)s / 2, "
            "%(v)s + CASE WHEN extract(doy FROM t) <= 40 THEN 60 ELSE 0 END, "
            "CASE WHEN extract(doy FROM t) = 100 AND extract(hour FROM t) < 5 "
            "THEN 250 ELSE 10 END, 0, 1 FROM generate_series(%(a)s::timestamptz, "
            "%(b)s::timestamptz - interval '1 second', "
            "%(step)s::interval) t",
            {
                "d": device,
                "a": start,
                "b": end,
                "v": pm10,
                "w": step_min * 60.0,
                "step": f"{step_min} minutes",
            },
        )


@pytest.fixture(scope="module")
def year_device(pg_url: str) -> str:
    device = f"yr-{uuid.uuid4().hex[:8]}"
    # a whole year of 10-minute data (utc+01 year), PM10 = 70 µg/m³ on days 1-40, 10 after
    _load(
        pg_url,
        device,
        f"s-{device}",
        datetime(YEAR - 1, 12, 31, 23, tzinfo=UTC),
        datetime(YEAR, 12, 31, 23, tzinfo=UTC),
        10.0,
    )
    return device


def test_devices_list_and_one(api_url: str, year_device: str) -> None:
    r = _http.get(f"{api_url}/api/v1/devices")
    assert r.status_code == 200
    d = next(x for x in r.json()["devices"] if x["device_id"] == year_device)
    assert d["site"]["site_type"] == "school"
    assert d["health"]["status"] == "offline"
    assert d["health"]["last_reading"].startswith(f"{YEAR}-12-31T22:50")
    assert "calibration" in d
    r = _http.get(f"{api_url}/api/v1/devices/{year_device}")
    assert r.json()["device_id"] == year_device


def test_readings_have_raw_calibrated_flags_and_both_times(api_url: str, year_device: str) -> None:
    r = _http.get(
        f"{api_url}/api/v1/devices/{year_device}/readings",
        params={"start": f"{YEAR}-07-01T00:00:00Z", "end": f"{YEAR}-07-01T01:00:00Z"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 6
    first = body["readings"][0]
    assert first["ts"] == f"{YEAR}-07-01T00:00:00+00:00"
    assert first["ts_local"] == f"{YEAR}-07-01T02:00:00+02:00"
    assert first["values"]["pm10_ugm3"] == 10.0
    assert set(first["calibrated"]) == {"pm25_ugm3", "pm10_ugm3", "no2_ppb"}
    assert first["flags"] == 0 and first["flag_names"] == [] and first["valid"] is True
    assert body["truncated"] is False and "next_start" not in body


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_truncated_answer_says_so_and_where_the_rest_lies(
    api_url: str, year_device: str, order: str
) -> None:
    """Six readings in the hour, four at a time: the answer says it is cut and gives the
    range of the rest; following it gets every reading, the boundary one twice."""
    hour = {"start": f"{YEAR}-07-01T00:00:00Z", "end": f"{YEAR}-07-01T01:00:00Z"}
    url = f"{api_url}/api/v1/devices/{year_device}/readings"
    first = _http.get(url, params={**hour, "limit": 4, "order": order}).json()
    assert (first["count"], first["truncated"]) == (4, True)
    assert "deduplicate on seq" in first["note"]
    rest = _http.get(
        url,
        params={"start": first["next_start"], "end": first["next_end"], "order": order},
    ).json()
    assert rest["truncated"] is False
    seqs = [r["seq"] for r in first["readings"]] + [r["seq"] for r in rest["readings"]]
    assert len(seqs) == 7 and len(set(seqs)) == 6  # the fourth comes again
    whole = _http.get(url, params={**hour, "order": order}).json()
    assert list(dict.fromkeys(seqs)) == [r["seq"] for r in whole["readings"]]


def test_profiles_carry_sources(api_url: str) -> None:
    r = _http.get(f"{api_url}/api/v1/profiles")
    ids = {p["id"] for p in r.json()["profiles"]}
    assert ids == {"eu-2008-50", "eu-2024-2881", "who-2021", "no-forurensningsforskriften-ch7"}
    r = _http.get(f"{api_url}/api/v1/profiles/eu-2008-50")
    pm10 = next(
        e
        for e in r.json()["entries"]
        if e["pollutant"] == "PM10" and e["averaging_period"] == "24h"
    )
    assert pm10["value_ugm3"] == 50 and pm10["allowed_exceedances_per_year"] == 35
    assert pm10["source_url"].startswith("https://")


def test_exceedances_count_days_and_label_indicative(api_url: str, year_device: str) -> None:
    r = _http.get(
        f"{api_url}/api/v1/devices/{year_device}/exceedances",
        params={"profile": "eu-2008-50", "year": YEAR},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] == "indicative – microsensor" and body["indicative"] is True
    by = {(e["pollutant"], e["averaging_period"], e["value_ugm3"]): e for e in body["entries"]}
    day = by[("PM10", "24h", 50.0)]
    assert day["count"] == 40 and day["allowed_exceedances_per_year"] == 35
    assert day["status"] == "exceeded"
    hour = by[("NO2", "1h", 200.0)]
    assert hour["count"] == 5  # 250 ppb = 478 µg/m³ for 5 hours on day 100
    assert hour["status"] == "not_exceeded"
    alert = by[("NO2", "1h", 400.0)]
    assert alert["count"] == 1 and alert["status"] == "exceeded"
    annual = by[("PM2.5", "1y", 25.0)]
    assert annual["status"] == "not_exceeded" and annual["annual_mean_ugm3"] == 5.0
    # Norway: 25 days allowed
    r = _http.get(
        f"{api_url}/api/v1/devices/{year_device}/exceedances",
        params={"profile": "no-forurensningsforskriften-ch7", "year": YEAR},
    )
    pm10 = next(
        e
        for e in r.json()["entries"]
        if e["pollutant"] == "PM10" and e["averaging_period"] == "24h"
    )
    assert pm10["allowed_exceedances_per_year"] == 25 and pm10["status"] == "exceeded"


def test_insufficient_data_is_not_compliance(api_url: str, pg_url: str) -> None:
    device = f"short-{uuid.uuid4().hex[:8]}"
    _load(
        pg_url,
        device,
        f"s-{device}",
        datetime(YEAR, 6, 1, tzinfo=UTC),
        datetime(YEAR, 6, 10, tzinfo=UTC),
        5.0,
    )
    r = _http.get(
        f"{api_url}/api/v1/devices/{device}/exceedances",
        params={"profile": "who-2021", "year": YEAR},
    )
    assert r.status_code == 200, r.text
    statuses = {e["status"] for e in r.json()["entries"]}
    assert statuses == {"insufficient_data"}


def test_index_and_exposure(api_url: str, year_device: str) -> None:
    r = _http.get(f"{api_url}/api/v1/index/latest")
    assert r.status_code == 200
    item = next(x for x in r.json()["devices"] if x["device_id"] == year_device)
    assert item["overall"]["label_no"] == "Lite"
    assert item["pollutants"]["PM10"]["index"]["class"] == 1
    r = _http.get(f"{api_url}/api/v1/exposure", params={"days": 7})
    assert r.status_code == 200
    assert all("text_no" in s and "text_en" in s for s in r.json()["sites"])


def test_exposure_says_how_much_data_its_mean_stands_on(api_url: str, pg_url: str) -> None:
    """A site measuring for the last 30 hours: over 1 day its mean covers the day; over 7
    days it stands on 30 of 168 hours, and the texts say so (they read as a week's mean)."""
    device = f"ex-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    _load(pg_url, device, f"s-{device}", now - timedelta(hours=29), now + timedelta(hours=1), 20)

    def mine(days: int) -> dict[str, object]:
        r = _http.get(f"{api_url}/api/v1/exposure", params={"days": days})
        assert r.status_code == 200, r.text
        return next(x for x in r.json()["sites"] if x["site_id"] == f"s-{device}")

    day, week = mine(1), mine(7)
    assert day["coverage_pct"] >= 95 and "For lite data" not in day["text_no"]
    assert week["hours_with_data"] == 30 and week["coverage_pct"] == 17.9
    assert "fra 30 timer med målinger (17,9 % av de siste 7 dagene)" in week["text_no"]
    assert "(skole)" in week["text_no"] and "(school)" in week["text_en"]
    assert "For lite data til å stå for hele perioden." in week["text_no"]
    assert "Too little data to stand for the whole period." in week["text_en"]


@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        pytest.param("/api/v1/devices/no-such-device", {}, 404, "no device", id="unknown-device"),
        pytest.param("/api/v1/devices/BAD!/readings", {}, 422, "path parameter", id="bad-id"),
        pytest.param(
            "/api/v1/devices/x-1/readings", {"start": "yesterday"}, 422, "start", id="bad-time"
        ),
        pytest.param(
            "/api/v1/devices/x-1/readings",
            {"start": "2026-01-01T00:00:00"},
            422,
            "timezone",
            id="naive-time",
        ),
        pytest.param(
            "/api/v1/devices/x-1/readings",
            {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            422,
            "must be before",
            id="reversed-range",
        ),
        pytest.param("/api/v1/devices/x-1/aggregates/weekly", {}, 422, "period", id="bad-period"),
        pytest.param(
            "/api/v1/devices/x-1/aggregates/daily",
            {"quantity": "pm3"},
            422,
            "unknown quantity",
            id="bad-quantity",
        ),
        pytest.param(
            "/api/v1/devices/{dev}/aggregates/hourly",
            {"start": "2020-01-01", "end": "2026-01-01"},
            422,
            "at most",
            id="too-long",
        ),
        pytest.param(
            "/api/v1/devices/{dev}/aggregates/daily",
            {"start": "1970-01-01", "end": "2099-12-31"},
            422,
            "94964 daily values asked for",
            id="too-long-daily",
        ),
        pytest.param(
            "/api/v1/devices/{dev}/aggregates/hourly",
            {"start": "2098-01-01"},  # end left out: today, before it
            422,
            "today when not given",
            id="future-start",
        ),
        pytest.param(
            "/api/v1/devices/{dev}/aggregates/daily",
            {"start": "2098-01-01"},
            422,
            "must not be after end",
            id="future-start-daily",
        ),
        pytest.param(
            "/api/v1/downloads/hourly.csv",
            {"start": "2026-02-01", "end": "2026-01-01"},
            422,
            "must not be after end",
            id="hourly-reversed",
        ),
        pytest.param(
            "/api/v1/downloads/hourly.parquet",
            {"start": "2024-01-01", "end": "2026-01-01"},
            422,
            "read the open-data archive",
            id="hourly-too-long",
        ),
        pytest.param(
            "/api/v1/downloads/hourly.csv", {"device": "nope-1"}, 404, "no device", id="hourly-dev"
        ),
        pytest.param(
            "/api/v1/downloads/hourly.csv", {"site": "nope-s"}, 404, "no site", id="hourly-site"
        ),
        pytest.param(
            "/api/v1/devices/x-1/readings",
            {"start": "2026-01-01T20:00:00 01:00"},  # what "+01:00" unencoded arrives as
            422,
            "write 2026-01-01T20:00:00%2B01:00",
            id="unencoded-plus",
        ),
        pytest.param(
            "/api/v1/downloads/readings.csv",
            {"end": "2026-01-01T20:00 0100"},
            422,
            "sent unencoded",
            id="unencoded-plus-download",
        ),
        pytest.param("/api/v1/profiles/eu-1999", {}, 404, "unknown profile", id="bad-profile"),
        pytest.param(
            "/api/v1/sites/s-x/exceedances",
            {"profile": "nope"},
            404,
            "unknown profile",
            id="bad-profile-param",
        ),
        pytest.param("/api/v1/areas/aggregates/daily", {"bbox": "1,2,3"}, 422, "bbox", id="bbox"),
        pytest.param(
            "/api/v1/downloads/readings.csv",
            {"device": "nope-1"},
            404,
            "no device",
            id="download-unknown",
        ),
    ],
)
def test_errors_say_what_to_fix(
    api_url: str, year_device: str, path: str, params: dict, status: int, words: str
) -> None:
    r = _http.get(api_url + path.format(dev=year_device), params=params)
    assert r.status_code == status, r.text
    assert words.lower() in r.json()["detail"].lower()


def test_write_endpoints_need_a_key(api_url: str, pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:  # one quarantined payload, so the list has one
        conn.execute(
            "INSERT INTO quarantine (source, topic, payload, reason, detail) "
            "VALUES ('mqtt', 'x/v1/k/readings', '{nope', 'not_json', 'test')"
        )
    site = {"site_id": f"k-{uuid.uuid4().hex[:8]}", "name": "Keyed", "site_type": "background"}
    r = _http.post(f"{api_url}/api/v1/sites", json=site)
    assert r.status_code == 401
    r = _http.post(f"{api_url}/api/v1/sites", json=site, headers={"X-API-Key": "wrong"})
    assert r.status_code == 403
    assert "wrong" not in r.text
    r = _http.post(f"{api_url}/api/v1/sites", json=site, headers={"X-API-Key": DEMO_API_KEY})
    assert r.status_code == 201, r.text
    r = _http.post(f"{api_url}/api/v1/sites", json=site, headers={"X-API-Key": DEMO_API_KEY})
    assert r.status_code == 409
    assert _http.get(f"{api_url}/api/v1/admin/quarantine").status_code == 401
    r = _http.get(f"{api_url}/api/v1/admin/quarantine", headers={"X-API-Key": DEMO_API_KEY})
    assert r.status_code == 200
    assert r.json()["items"]
    for item in r.json()["items"]:  # times in UTC and Oslo time
        utc, local = (datetime.fromisoformat(item[k]) for k in ("received_at", "received_at_local"))
        assert utc == local and utc.utcoffset() == timedelta(0)
        assert local.utcoffset() in (timedelta(hours=1), timedelta(hours=2))


def test_deployment_moves_a_device(api_url: str, pg_url: str) -> None:
    device = f"mv-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (device,)
        )
    key = {"X-API-Key": DEMO_API_KEY}
    for s in ("a", "b"):
        _http.post(
            f"{api_url}/api/v1/sites", json={"site_id": f"{device}-{s}", "name": s}, headers=key
        )
    r = _http.post(
        f"{api_url}/api/v1/deployments",
        headers=key,
        json={"site_id": f"{device}-a", "device_id": device, "valid_from": "2026-01-01T00:00:00Z"},
    )
    assert r.status_code == 201, r.text
    r = _http.post(
        f"{api_url}/api/v1/deployments",
        headers=key,
        json={"site_id": f"{device}-b", "device_id": device, "valid_from": "2026-02-01T00:00:00Z"},
    )
    assert r.status_code == 201, r.text
    r = _http.get(f"{api_url}/api/v1/sites/{device}-a")
    (dep,) = r.json()["deployments"]
    assert dep["valid_to"] == "2026-02-01T00:00:00+00:00"
    r = _http.post(
        f"{api_url}/api/v1/deployments",
        headers=key,
        json={"site_id": "nope-nope", "device_id": device},
    )
    assert r.status_code == 404


def test_openapi_served(api_url: str) -> None:
    spec = _http.get(f"{api_url}/openapi.json").json()
    for path in (
        "/api/v1/devices/{device_id}/aggregates/{period}",
        "/api/v1/downloads/readings.csv",
        "/api/v1/devices/{device_id}/exceedances",
        "/api/v1/index/latest",
    ):
        assert path in spec["paths"]
    for path, ops in spec["paths"].items():
        for op in ops.values():
            assert op.get("summary") and op.get("description"), path


def test_index_coverage_is_each_pollutants_on_a_box_with_two_sensors(
    api_url: str, pg_url: str
) -> None:
    """A box with an SDS011 and an SHT31 stores a reading of each per minute; in its latest
    hour the SDS011 sent 30 of 60 windows. The index gives PM2.5 and PM10 50 % coverage, and
    the hour 50 % (the box's 90 readings would say 150 %)."""
    device = f"two-{uuid.uuid4().hex[:8]}"
    hour = datetime(YEAR, 9, 1, 10, tzinfo=UTC)
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')",
                     (device,))  # fmt: skip
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, pm10_ugm3, temperature_c, rh_pct, flags, schema_version) "
            "SELECT %s, 2 * i + s, %s::timestamptz + i * interval '1 minute', 60, 60, "
            "CASE s WHEN 0 THEN 'sds011' ELSE 'sht31' END, CASE s WHEN 0 THEN 8 END, "
            "CASE s WHEN 0 THEN 12 END, CASE s WHEN 1 THEN 5 END, CASE s WHEN 1 THEN 60 END, 0, 1 "
            "FROM generate_series(0, 59) i, generate_series(0, 1) s WHERE s = 1 OR i %% 2 = 0",
            (device, hour),
        )
    r = _http.get(f"{api_url}/api/v1/index/latest")
    assert r.status_code == 200
    item = next(x for x in r.json()["devices"] if x["device_id"] == device)
    assert item["hour_start"] == hour.isoformat()
    assert item["coverage_pct"] == 50.0
    assert item["pollutants"]["PM2.5"]["coverage_pct"] == 50.0
    assert item["pollutants"]["PM10"]["coverage_pct"] == 50.0
    assert "NO2" not in item["pollutants"]
