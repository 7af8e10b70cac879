"""The dashboard in a real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

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


def test_dashboard_map_and_site_chart(api_url: str, demo_sites: list[str], tmp_path: Path) -> None:
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
            page.click(f'#map circle.site[data-device="{demo_sites[0]}"]')
            page.wait_for_selector("#chart svg path.series", timeout=30_000)
            page.wait_for_selector("#exceed tbody td.num", timeout=30_000)
            assert "<img" in page.text_content("#site-name")
            assert page.locator("#chart svg line.limit").count() >= 1
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            page.click('nav button[data-tab="exposed"]')
            page.wait_for_selector("#exposed li", timeout=20_000)
            assert "gjennomsnitt" in page.text_content("#exposed")
            page.click('nav button[data-tab="downloads"]')
            page.wait_for_selector("#dl-device option", timeout=20_000)
            assert "/api/v1/downloads/readings.csv" in (page.get_attribute("#dl-csv", "href") or "")
        finally:
            browser.close()
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    assert not errors, errors
