"""The dashboard in a real headless Chromium (Debian's, driven by Playwright).

An exposure map is built from the test sites' readings with ``luftnett map build`` into a
maps directory of its own, and an API serving that directory is started, so the browser sees
the map layer (toggle, legend, attribution) as a municipality would.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from click.testing import CliRunner

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def demo_sites(pg_url: str) -> list[str]:
    """Three sites with 48 h of 5-minute data up to now, one with a hostile name."""
    tag = uuid.uuid4().hex[:6]
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    devices = []
    with psycopg.connect(pg_url) as conn:
        for i, (kind, lat, lon, level) in enumerate(
            [
                ("traffic", 59.745, 10.19, 40.0),
                ("school", 59.735, 10.22, 12.0),
                ("background", 59.752, 10.235, 4.0),
            ]
        ):
            site, device = f"ui-{tag}-{i}", f"ui-{tag}-{i}"
            name = f"<img src=x onerror=alert(1)> {kind} {i}" if i == 0 else f"{kind.title()} {i}"
            conn.execute(
                "INSERT INTO sites (site_id, name, site_type, lat, lon) "
                "VALUES (%s, %s, %s, %s, %s)",
                (site, name, kind, lat, lon),
            )
            conn.execute(
                "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (device,)
            )
            conn.execute(
                "INSERT INTO deployments (site_id, device_id, valid_from) VALUES (%s, %s, %s)",
                (site, device, now - timedelta(days=3)),
            )
            conn.execute(
                "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
                "pm25_ugm3, pm10_ugm3, flags, schema_version) SELECT %s, i, "
                "%s::timestamptz - i * interval '5 minutes', 300, 300, 'sds011', "
                "%s * (1 + 0.3 * sin(i / 20.0)), %s * 1.6 * (1 + 0.3 * sin(i / 20.0)), 0, 1 "
                "FROM generate_series(0, 575) i",
                (device, now, level, level),
            )
            devices.append(device)
    return devices


@pytest.fixture(scope="module")
def maps_api_url(
    pg_url: str, demo_sites: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The API with ``api.maps_dir`` holding yesterday's PM2.5 map of the demo sites."""
    import uvicorn

    from luftnett.api.app import create_app
    from luftnett.cli import main
    from luftnett.servers import free_port
    from luftnett.settings import Settings

    maps = tmp_path_factory.mktemp("maps")
    yesterday = (datetime.now(UTC) + timedelta(hours=1) - timedelta(days=1)).date()
    res = CliRunner().invoke(
        main,
        [
            *("map", "build", "--pollutant", "pm25", "--period", "daily", "--at", str(yesterday)),
            *("--method", "idw", "--cell", "100", "--out", str(maps / "pm25-yesterday")),
        ],
        env={"LUFTNETT_DATABASE_URL": pg_url},
    )
    assert res.exit_code == 0, res.output
    settings = Settings.model_validate({"database_url": pg_url, "api": {"maps_dir": maps}})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, pg_url), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("API server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_maps_endpoints_serve_the_built_map(maps_api_url: str) -> None:
    body = httpx.get(f"{maps_api_url}/api/v1/maps", timeout=60).json()
    (m,) = body["maps"]
    assert m["map_id"] == "pm25-yesterday" and m["pollutant"] == "pm25"
    (south, west), (north, east) = m["bounds"]
    assert 59.6 < south < north < 59.9 and 10.0 < west < east < 10.4
    png = httpx.get(maps_api_url + m["files"]["layer_png"], timeout=60)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    grid = httpx.get(maps_api_url + m["files"]["grid_geojson"], timeout=60)
    assert grid.headers["content-type"].startswith("application/geo+json")
    assert json.loads(grid.content)["type"] == "FeatureCollection"
    for bad in ("pm25-yesterday/..%2F..%2Fetc%2Fpasswd", "..%2Fmaps/layer.png", "nope/layer.png"):
        r = httpx.get(f"{maps_api_url}/api/v1/maps/{bad}", timeout=60)
        assert r.status_code in (404, 422), (bad, r.status_code)
        assert "detail" in r.json()
    assert httpx.get(f"{maps_api_url}/api/v1/maps/pm25-yesterday/x.txt").status_code == 404


def test_dashboard_map_and_site_chart(
    maps_api_url: str, demo_sites: list[str], pg_url: str, tmp_path: Path
) -> None:
    api_url = maps_api_url
    quiet = f"{demo_sites[0]}-quiet"  # a sensor not heard from for 2 hours
    deadpm = f"{demo_sites[0]}-deadpm"  # its PM sensor silent, its companion reporting
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, sensor_model, last_seen) "
            "VALUES (%s, 'pms5003', now() - interval '2 hours')",
            (quiet,),
        )
        # a box whose SDS011 died an hour ago while its SHT31 reports on
        conn.execute(
            "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (deadpm,)
        )
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "sensor_serial, rh_pct, flags, schema_version) "
            "VALUES (%s, 1, now(), 60, 60, 'sht31', 'T1', 55, 0, 1)",
            (deadpm,),
        )
        conn.execute(
            "INSERT INTO device_sensors VALUES (%(d)s, 'sds011', 'S1', now() - interval '1 day', "
            "now() - interval '1 hour', 60), (%(d)s, 'sht31', 'T1', now() - interval '1 day', "
            "now(), 60)",
            {"d": deadpm},
        )
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
            page.goto(api_url + "/")
            for device in demo_sites:
                page.wait_for_selector(f'#map circle.site[data-device="{device}"]', timeout=20_000)
            # index colour: the traffic site (PM2.5 ~ 40) is Moderat (orange)
            fill = page.get_attribute(f'#map circle.site[data-device="{demo_sites[0]}"]', "fill")
            assert fill == "#ff9900"
            # user text is text, not markup
            assert page.locator("#map img").count() == 0
            # the exposure map under the sites, with its legend and attribution; toggled off
            # and on again
            page.wait_for_selector('#map image.exposure-layer[data-map="pm25-yesterday"]')
            assert page.is_visible("#layer-box")
            assert page.locator("#layer-legend .ramp").count() == 1
            assert "idw" in page.text_content("#layer-attr")
            assert "luftnett map build" in page.text_content("#layer-attr")
            loaded = page.evaluate(
                "fetch(document.querySelector('#map image.exposure-layer').getAttribute('href'))"
                ".then(r => r.status)"
            )
            assert loaded == 200
            page.uncheck("#layer-on")
            page.wait_for_selector("#map image.exposure-layer", state="detached")
            page.check("#layer-on")
            page.wait_for_selector("#map image.exposure-layer")
            page.wait_for_selector(f'#map circle.site[data-device="{demo_sites[0]}"]')
            # the shared test database holds other tests' sites too, and one may sit on top
            # of this marker at the map's scale: deliver the click to this marker itself
            page.dispatch_event(f'#map circle.site[data-device="{demo_sites[0]}"]', "click")
            page.wait_for_selector("#chart svg path.series", timeout=30_000)
            page.wait_for_selector("#exceed tbody td.num", timeout=30_000)
            assert "<img" in page.text_content("#site-name")
            assert page.locator("#chart svg line.limit").count() >= 1
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            shot = Path(__file__).parents[2] / "build" / "dashboard.png"
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            lost = _ledger_in_the_panel(page, api_url, pg_url, demo_sites[0])
            _panel_sections(page, demo_sites[0], demo_sites[1])
            _annotate_and_revoke(page, api_url, demo_sites[0])
            page.click('nav button[data-tab="exposed"]')
            page.wait_for_selector("#exposed li", timeout=20_000)
            assert "gjennomsnitt" in page.text_content("#exposed")
            # areas ranked on the map, in bokmål and English
            page.wait_for_selector("#areas li", timeout=20_000)
            assert "95 %" in page.text_content("#areas li")
            assert page.locator('#areas li div[lang="en"]').count() >= 1
            page.click('nav button[data-tab="downloads"]')
            page.wait_for_selector("#dl-device option", timeout=20_000)
            assert "/api/v1/downloads/readings.csv" in (page.get_attribute("#dl-csv", "href") or "")
            _download_links(page, api_url, pg_url, demo_sites[1])
            # sensors that need attention, in bokmål and English; healthy ones not listed
            page.click('nav button[data-tab="health"]')
            page.wait_for_selector(f'#health li[data-device="{quiet}"]', timeout=20_000)
            row = page.text_content(f'#health li[data-device="{quiet}"]') or ""
            assert "stille: ingen kontakt / silent: no contact" in row
            assert "(2 t/h)" in row and "pms5003" in row
            assert "trenger tilsyn" in (page.text_content("#health-note") or "")
            row = page.text_content(f'#health li[data-device="{deadpm}"]') or ""
            assert "en sensor er stille mens boksen sender / a sensor is silent while" in row
            assert "sds011 S1: siste måling / last reading" in row
            assert page.locator(f'#health li[data-device="{demo_sites[1]}"]').count() == 0
            _fleet_ledger(page, api_url, demo_sites[0], lost)
        finally:
            browser.close()
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    assert not errors, errors


def _annotate_and_revoke(page: Any, api_url: str, device: str) -> None:
    """Staff mark two hours of the open site as fireworks in Oslo time from the site panel;
    the API stores them in UTC and the hours' readings leave the means; then they revoke it.
    A wrong API key gets an error message and stores nothing."""
    from luftnett.settings import DEMO_API_KEY

    oslo = ZoneInfo("Europe/Oslo")
    end = datetime.now(oslo).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    start = end - timedelta(hours=2)
    page.wait_for_selector("#annotations li.none")
    page.fill("#ann-start", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#ann-end", end.strftime("%Y-%m-%dT%H:%M"))
    page.select_option("#ann-kind", "fireworks")
    page.fill("#ann-reason", "<b>rockets</b> at the school")
    assert not page.is_checked("#ann-invalidate")  # a note unless staff say otherwise
    page.check("#ann-invalidate")
    page.fill("#ann-by", "kari")
    page.fill("#ann-key", "not-the-key")
    # the end before the start: said in plain words, nothing sent
    page.fill("#ann-end", (start - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.click("#ann-form button[type=submit]")
    page.wait_for_selector("#ann-status.error")
    assert "the end must be after the start" in (page.text_content("#ann-status") or "")
    page.fill("#ann-end", end.strftime("%Y-%m-%dT%H:%M"))
    page.click("#ann-form button[type=submit]")
    page.wait_for_function(
        "document.getElementById('ann-status').textContent.includes('API')", timeout=20_000
    )
    assert "not saved" in (page.text_content("#ann-status") or "")
    page.fill("#ann-key", DEMO_API_KEY)
    page.click("#ann-form button[type=submit]")
    page.wait_for_selector("#annotations li.active", timeout=20_000)
    assert "24 readings leave the statistics" in (page.text_content("#ann-status") or "")
    assert "fyrverkeri / fireworks" in (page.text_content("#annotations li.active") or "")
    assert "<b>rockets</b>" in (page.text_content("#annotations li.active") or "")  # as text
    assert page.locator("#annotations b").count() == 0
    notes = httpx.get(f"{api_url}/api/v1/annotations", params={"device": device}).json()
    assert notes["count"] == 1
    a = notes["annotations"][0]
    assert datetime.fromisoformat(a["starts_at"]) == start.astimezone(UTC)
    assert datetime.fromisoformat(a["ends_at"]) == end.astimezone(UTC)
    assert (a["kind"], a["invalidates"], a["reason"]) == (
        "fireworks",
        True,
        "<b>rockets</b> at the school",
    )
    assert _valid_in_hours(api_url, device, start, end) == [0, 0]
    page.click("#annotations li.active button.revoke")  # no reason yet: asked for one
    page.wait_for_function(
        "document.getElementById('ann-status').textContent.includes('not revoked')"
    )
    assert page.locator("#annotations li.active").count() == 1
    page.fill("#annotations li.active input", "it was the neighbour's garden")
    page.click("#annotations li.active button.revoke")
    page.wait_for_selector("#annotations li.revoked", timeout=20_000)
    assert "trukket tilbake / revoked" in (page.text_content("#annotations li.revoked") or "")
    assert _valid_in_hours(api_url, device, start, end) == [12, 12]
    # the same period for every device on the map: one note each
    on_map = page.eval_on_selector_all("#map circle.site", "cs => cs.map(c => c.dataset.device)")
    page.fill("#ann-start", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#ann-end", end.strftime("%Y-%m-%dT%H:%M"))
    page.select_option("#ann-kind", "fog")
    page.fill("#ann-reason", "fog over the town")
    page.uncheck("#ann-invalidate")
    page.check("#ann-all")
    page.click("#ann-form button[type=submit]")
    page.wait_for_selector("#annotations li.active", timeout=20_000)
    assert f"{len(on_map)} annotations saved" in (page.text_content("#ann-status") or "")
    for d in on_map:  # other tests' sites may be on the map, with notes of their own
        notes = httpx.get(f"{api_url}/api/v1/annotations", params={"device": d, "active": True})
        kinds = [(n["kind"], n["invalidates"], n["reason"]) for n in notes.json()["annotations"]]
        assert kinds.count(("fog", False, "fog over the town")) == 1, (d, kinds)


def _valid_in_hours(api_url: str, device: str, start: datetime, end: datetime) -> list[int]:
    """Valid PM2.5 readings in each hour of [start, end) (the API's hourly series)."""
    days = {"quantity": "pm25_ugm3", "start": str(start.date()), "end": str(end.date())}
    r = httpx.get(f"{api_url}/api/v1/devices/{device}/aggregates/hourly", params=days)
    assert r.status_code == 200, r.text
    by_hour = {datetime.fromisoformat(x["period"]): x["readings_valid"] for x in r.json()["rows"]}
    hours = range(int((end - start) / timedelta(hours=1)))
    return [by_hour[start.astimezone(UTC) + timedelta(hours=h)] for h in hours]


def _fleet_ledger(page: Any, api_url: str, lossy: str, lost: str) -> None:
    """The status tab's ledger of the whole network, yesterday and today: each day's sums as
    the API counts them, and the device that lost seqs (``_ledger_in_the_panel``) named with
    its missing ranges (``lost``)."""
    page.wait_for_selector(f'#fleet-missing li[data-device="{lossy}"]', timeout=20_000)
    body = httpx.get(f"{api_url}/api/v1/ledger", params={"days": 2}).json()
    assert page.locator("#fleet-ledger tbody tr").count() == 2
    for day in (body["day"], body["first_day"]):
        mine = [e for e in body["devices"] if e["day"] == day]
        cells = page.locator(f'#fleet-ledger tbody tr[data-day="{day}"] td').all_text_contents()
        want = [len(mine), *(sum(e[k] for e in mine) for k in ("sent", "stored", "missing"))]
        got = [int(re.sub(r"\D", "", c)) for c in cells[1:5]]
        assert got == want, (day, cells, want)
    row = page.text_content(f'#fleet-missing li[data-device="{lossy}"]') or ""
    assert f"4 mangler / missing (seq {lost})" in row
    assert page.locator("#fleet-ledger td.lost").count() >= 1


def _ledger_in_the_panel(page: Any, api_url: str, pg_url: str, device: str) -> str:
    """The site panel's completeness ledger: the last 7 Oslo days, each as the API counts it;
    four readings lost from yesterday's midday (seqs k..k+2 and k+5: a range and a single seq,
    never split by midnight) show as missing, marked, their seqs in the cell's title, which
    this returns."""
    oslo = ZoneInfo("Europe/Oslo")
    yesterday = datetime.now(oslo).date() - timedelta(days=1)
    noon = datetime.combine(yesterday, dt_time(12), oslo)
    with psycopg.connect(pg_url) as conn:  # seq i is i * 5 minutes before the newest
        row = conn.execute(
            "SELECT min(seq) FROM readings WHERE device_id = %s AND ts <= %s", (device, noon)
        ).fetchone()
        assert row is not None and row[0] is not None
        k = int(row[0])
        conn.execute(
            "DELETE FROM readings WHERE device_id = %s AND (seq BETWEEN %s AND %s OR seq = %s)",
            (device, k, k + 2, k + 5),
        )
        conn.execute(
            "INSERT INTO seq_ledger (device_id, received) VALUES (%s, %s::int8multirange) "
            "ON CONFLICT (device_id) DO UPDATE SET received = EXCLUDED.received",
            (device, f"{{[0,{k}),[{k + 3},{k + 5}),[{k + 6},576)}}"),
        )
    page.dispatch_event(f'#map circle.site[data-device="{device}"]', "click")  # reload
    page.wait_for_selector(f'#ledger tbody tr[data-day="{yesterday}"] td.lost', timeout=20_000)
    assert page.locator("#ledger tbody tr").count() == 7
    assert page.locator("#ledger td.lost").count() == 1
    today = datetime.now(oslo).date()
    for day in (today, yesterday):
        api = httpx.get(f"{api_url}/api/v1/ledger", params={"device": device, "day": str(day)})
        want = api.json()["devices"][0]
        cells = page.locator(f'#ledger tbody tr[data-day="{day}"] td').all_text_contents()
        keys = ("sent", "stored", "missing", "duplicates", "late")
        assert cells == [str(day), *(str(want[k]) for k in keys)], (cells, want)
    cells = page.locator(f'#ledger tbody tr[data-day="{yesterday}"] td').all_text_contents()
    assert cells[3] == "4"
    lost = f"{k}–{k + 2}, {k + 5}"  # a single lost seq once, not as "n–n"
    assert page.get_attribute("#ledger td.lost", "title") == f"seq {lost}"
    return lost


def _download_links(page: Any, api_url: str, pg_url: str, device: str) -> None:
    """The downloads tab: a device and two days chosen, the readings links cover both days
    (to 00:00 UTC after the second), and the hourly CSV link gives that device's hours (from
    the rollups, which the collector keeps; these readings were inserted directly)."""
    from luftnett.collector.rollups import refresh

    with psycopg.connect(pg_url) as conn:
        refresh(conn, device)
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=1), today
    page.select_option("#dl-device", device)
    page.fill("#dl-start", str(first))
    page.fill("#dl-end", str(last))
    page.dispatch_event("#dl-form", "change")
    href = page.get_attribute("#dl-csv", "href") or ""
    assert f"start={first}T00%3A00%3A00Z" in href
    assert f"end={today + timedelta(days=1)}T00%3A00%3A00Z" in href, href
    hourly = page.get_attribute("#dl-hourly-csv", "href") or ""
    assert "/api/v1/downloads/hourly.csv?" in hourly and f"end={last}" in hourly
    url = hourly if hourly.startswith("http") else api_url + hourly
    r = httpx.get(url, timeout=60)
    assert r.status_code == 200, r.text
    lines = r.text.splitlines()
    assert lines[0].startswith("device_id,site_id,hour_start,hour_start_local,")
    assert len(lines) > 24 and {x.split(",")[0] for x in lines[1:]} == {device}


def _panel_sections(page: Any, a: str, b: str) -> None:
    """The site panel: the chart has its unit, an hour without neighbours is a dot (a
    one-point line drew nothing), and a section whose request fails says so and shows no
    other site's rows (it kept the previous site's under the new name)."""
    assert "µg/m³" in (page.text_content("#chart svg text.unit") or "")
    assert "(norsk tid / Oslo time)" in (page.text_content("#site-meta") or "")
    # keyboard: a site is a button that Space opens too
    page.focus(f'#map circle.site[data-device="{b}"]')
    page.keyboard.press(" ")
    page.wait_for_function(
        f"document.querySelector('#map circle.site.selected').dataset.device === '{b}'"
    )
    page.focus(f'#map circle.site[data-device="{a}"]')
    page.keyboard.press("Enter")
    page.wait_for_selector("#chart svg text.unit", timeout=20_000)
    assert page.locator("#chart svg line.day-tick").count() >= 6  # Oslo midnights in 7 days
    page.wait_for_selector("#exceed tbody td.num", timeout=30_000)
    page.wait_for_selector("#exceed-note a", timeout=20_000)
    assert "Målingene er indikative" in (page.text_content("#exceed-note") or "")
    assert (page.get_attribute("#exceed-note a", "href") or "").startswith("https://")
    periods = set(page.locator("#exceed tbody tr td:nth-child(2)").all_text_contents())
    assert periods and periods <= {"time / hour", "døgn / day", "år / year"}, periods

    def one_hour(route: Any) -> None:  # the chart's series, cut to one hour each
        response = route.fetch()
        body = response.json()
        seen: set[str] = set()
        rows = []
        for r in body["rows"]:
            if r["mean"] is not None and r["quantity"] not in seen:
                seen.add(r["quantity"])
                rows.append(r)
        route.fulfill(response=response, json={**body, "rows": rows})

    page.route("**/aggregates/hourly?*", one_hour)
    page.dispatch_event(f'#map circle.site[data-device="{b}"]', "click")
    page.wait_for_selector("#chart svg circle.point", timeout=20_000)
    assert page.locator("#chart svg circle.point").count() >= 2  # PM2.5 and PM10
    page.unroute("**/aggregates/hourly?*")
    page.wait_for_selector("#ledger tbody tr", timeout=20_000)  # b's ledger
    page.route(f"**/ledger?device={a}*", lambda route: route.abort())
    page.dispatch_event(f'#map circle.site[data-device="{a}"]', "click")
    page.wait_for_selector("#ledger-note.load-error", timeout=20_000)
    assert "Kunne ikke hente data" in (page.text_content("#ledger-note") or "")
    assert page.locator("#ledger tbody tr").count() == 0  # not b's rows under a's name
    page.unroute(f"**/ledger?device={a}*")
    page.dispatch_event(f'#map circle.site[data-device="{a}"]', "click")
    page.wait_for_selector("#ledger tbody tr", timeout=20_000)
    assert page.locator("#ledger-note.load-error").count() == 0
    # a phone: the open panel fits the width (its tables scroll inside it)
    wide = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.wait_for_function("document.documentElement.scrollWidth <= 391", timeout=5_000)
    finally:
        page.set_viewport_size(wide)


def test_api_docs_work_offline(api_url: str) -> None:
    """/docs (Swagger UI) and /redoc with every request off this server refused, as on a
    laptop without internet: the API's own copies render its operations (FastAPI's default
    pages load them from a CDN and stayed blank)."""
    from playwright.sync_api import sync_playwright

    outside: list[str] = []

    def only_here(route: Any) -> None:
        if route.request.url.startswith(api_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        try:
            page = browser.new_page()
            page.route("**/*", only_here)
            page.goto(f"{api_url}/docs")
            page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
            assert "luftnett API" in (page.text_content(".swagger-ui .info .title") or "")
            assert page.locator(".swagger-ui .opblock").count() > 20
            page.goto(f"{api_url}/redoc")
            page.wait_for_selector("text=luftnett API", timeout=30_000)
            assert page.locator("[data-section-id]").count() > 20
        finally:
            browser.close()
    # Swagger UI asks for nothing else; ReDoc only for its footer's "powered by" logo
    assert outside == ["https://cdn.redoc.ly/redoc/logo-mini.svg"], outside
