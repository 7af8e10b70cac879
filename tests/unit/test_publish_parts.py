"""Pieces of `luftnett publish` that need no database: chunk planning, the manifest, the
schedule, the schema's single source and the catalogue's licence choice."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from luftnett.api import export
from luftnett.errors import ConfigError, PublishError
from luftnett.publish.archive import _plan
from luftnett.publish.catalogue import Facts, build_catalogue
from luftnett.publish.cli import next_run
from luftnett.publish.manifest import ChunkEntry, FileEntry, Manifest
from luftnett.publish.schema import arrow_schema, fields
from luftnett.settings import PublishSettings, load_settings


def test_new_spans_never_cross_a_month_and_skip_published_days() -> None:
    m = Manifest()
    ds = m.dataset("raw")
    c = ChunkEntry(date(2026, 3, 10), date(2026, 3, 12), {"rows": 1})
    ds.chunks[c.key] = c
    meeting, spans = _plan(m, "raw", date(2026, 2, 27), date(2026, 4, 2))
    assert meeting == [c]
    assert spans == [
        (date(2026, 2, 27), date(2026, 3, 1)),
        (date(2026, 3, 1), date(2026, 3, 10)),
        (date(2026, 3, 12), date(2026, 4, 1)),
        (date(2026, 4, 1), date(2026, 4, 2)),
    ]
    # the nightly run: one new day after the published ones
    meeting, spans = _plan(m, "raw", date(2026, 3, 12), date(2026, 3, 13))
    assert (meeting, spans) == ([], [(date(2026, 3, 12), date(2026, 3, 13))])


def test_manifest_round_trips_and_keeps_versions() -> None:
    m = Manifest()
    ds = m.dataset("hourly")
    f = FileEntry(
        "dataset=hourly/pollutant=pm25/year=2026/month=3/p.parquet",
        "parquet",
        {"pollutant": "pm25", "year": "2026", "month": "3"},
        10,
        100,
        "ab" * 32,
    )
    c = ChunkEntry(date(2026, 3, 1), date(2026, 4, 1), {"rows": 10, "state": "x"}, [f])
    ds.chunks[c.key] = c
    ds.version = 1
    ds.versions.append(
        {"version": 1, "files": ds.files(), "published_at": "2026-04-02T00:00:00+00:00"}
    )
    text = m.dumps()
    again = Manifest.loads(text)
    assert again.dumps() == text
    assert again.version_files("hourly", 1) == [f.path]
    with pytest.raises(PublishError, match="no version 2"):
        again.version_files("hourly", 2)
    with pytest.raises(PublishError, match="not a luftnett archive manifest"):
        Manifest.loads('{"format": "delta"}')


@pytest.mark.parametrize(
    ("now", "at", "expected"),
    [
        (
            datetime(2026, 11, 22, 1, 0, tzinfo=UTC),
            "03:30",
            datetime(2026, 11, 22, 3, 30, tzinfo=UTC),
        ),
        (
            datetime(2026, 11, 22, 3, 30, tzinfo=UTC),
            "03:30",
            datetime(2026, 11, 23, 3, 30, tzinfo=UTC),
        ),
        (
            datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
            "00:00",
            datetime(2027, 1, 1, 0, 0, tzinfo=UTC),
        ),
    ],
)
def test_next_nightly_run(now: datetime, at: str, expected: datetime) -> None:
    assert next_run(now, at) == expected


def test_raw_schema_is_the_downloads_dictionary() -> None:
    """One source: the raw dataset's columns are the wide download's (ts_local in the
    archive's own time zone)."""
    wide = [c.name for c in export.columns("wide", True, 1.0)]
    raw = [f.name for f in fields("raw")]
    assert raw == wide
    assert raw.index("ts_local") == raw.index("ts") + 1
    utc1 = {f.name: f.description for f in fields("raw", "Etc/GMT-1")}
    assert "Etc/GMT-1" in utc1["ts_local"]
    schema = arrow_schema("raw")
    assert schema.field("pm25_ugm3").metadata[b"unit"] == "µg/m³".encode()
    assert str(schema.field("ts").type) == "timestamp[us, tz=UTC]"
    hourly = arrow_schema("hourly", unit="ppb")
    assert hourly.field("mean").metadata[b"unit"] == b"ppb"


@pytest.mark.parametrize(
    ("licence", "uri"),
    [
        ("NLOD-2.0", "http://publications.europa.eu/resource/authority/licence/NLOD_2_0"),
        ("CC-BY-4.0", "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0"),
    ],
)
def test_licence_is_configurable(licence: str, uri: str) -> None:
    s = PublishSettings(licence=licence, publisher_id="123456789")  # type: ignore[arg-type]
    doc = build_catalogue(
        Facts(), s, {"hourly": {"parquet": "https://x/a"}, "raw": {}}, ("hourly", "raw")
    )
    (hourly, raw) = doc["dcat:dataset"]
    assert [d["dct:license"]["@id"] for d in hourly["dcat:distribution"]] == [uri]
    assert raw["dcat:distribution"] == []
    assert hourly["dct:publisher"]["dct:identifier"] == "123456789"


def test_publish_settings_refuse_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUFTNETT_PUBLISH__LICENCE", "GPL")
    with pytest.raises(ConfigError, match=r"publish\.licence"):
        load_settings()
    monkeypatch.setenv("LUFTNETT_PUBLISH__LICENCE", "NLOD-2.0")
    monkeypatch.setenv("LUFTNETT_PUBLISH__NIGHTLY_AT", "25:00")
    with pytest.raises(ConfigError, match=r"publish\.nightly_at"):
        load_settings()


def test_docs_describe_every_column() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "publish.md").read_text()
    for dataset in ("raw", "hourly"):
        for f in fields(dataset):  # type: ignore[arg-type]
            # the calibrated columns are described once, for pm25 "(and pm10, no2)"
            alias = f.name.replace("pm10_ugm3", "pm25_ugm3").replace("no2_ppb_", "pm25_ugm3_")
            assert f"`{f.name}`" in doc or f"`{alias}`" in doc, (dataset, f.name)
