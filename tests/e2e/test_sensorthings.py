"""The SensorThings facade over HTTP, on readings written by the collector's Writer.

Conformance-style requests: the service root, every collection's ``@iot.`` links resolving,
navigation Thing -> Datastreams -> Observations, ``$filter`` on phenomenonTime against the
database's own rows, ``$expand``, ``$top/$skip/$orderby/$count`` and nextLink walks, malformed
options as 400s, and random ``$filter`` text that never gives a 5xx.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luftnett.api.quality import INVALID_MASK
from luftnett.calibration.apply_db import ensure_fleet_defaults
from luftnett.collector.validate import Accepted, validate_message
from luftnett.collector.writer import Writer
from luftnett.contracts import mqtt as contract

T0 = datetime(2025, 6, 1, tzinfo=UTC)
N = 300
STA = "/sta/v1.1"
COLLECTIONS = [
    "Things",
    "Locations",
    "HistoricalLocations",
    "Sensors",
    "ObservedProperties",
    "Datastreams",
    "Observations",
    "FeaturesOfInterest",
]


def get(url: str, **params: str) -> httpx.Response:
    return httpx.get(url, params=params or None, timeout=120)


def ok(url: str, **params: str) -> dict[str, Any]:
    r = get(url, **params)
    assert r.status_code == 200, f"{url} {params} -> {r.status_code}: {r.text[:300]}"
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture(scope="module")
def dev(pg_url: str) -> str:
    """A device at a site of its own, N one-minute readings stored by the collector's Writer
    (with calibrated PM values from the sds011 fleet default); reading 7 is warming up."""
    device = f"sta-{uuid.uuid4().hex[:8]}"
    site = f"sta-site-{device[4:]}"
    readings = [
        contract.Reading(
            seq=i,
            ts=T0 + i * timedelta(minutes=1),
            window_s=60,
            n_samples=60,
            values={"pm25_ugm3": 5.0 + (i * 7) % 23, "pm10_ugm3": 9.0 + (i * 5) % 31},
            flags=["warming_up"] if i == 7 else [],
        )
        for i in range(N)
    ]
    payload = contract.encode(
        contract.ReadingsPayload(
            device_id=device,
            agent_version="test",
            sensor=contract.SensorInfo(model="sds011", serial="A1"),
            readings=readings,
        )
    )
    item = validate_message("t", contract.readings_topic("t", device), payload)
    assert isinstance(item, Accepted)
    with psycopg.connect(pg_url) as conn:
        ensure_fleet_defaults(conn)
        conn.commit()
        assert Writer(conn, rollups=False).write([item]).stored == N
        conn.execute(
            "INSERT INTO sites (site_id, name, site_type, lat, lon) "
            "VALUES (%s, 'STA school', 'school', 59.91, 10.75)",
            (site,),
        )
        conn.execute(
            "INSERT INTO deployments (site_id, device_id, valid_from) VALUES (%s, %s, %s)",
            (site, device, T0 - timedelta(days=1)),
        )
    return device


def ds(device: str, quantity: str = "pm25_ugm3", kind: str = "raw") -> str:
    return f"{device}:{quantity}:{kind}"


def test_service_root_lists_collections_and_conformance(api_url: str) -> None:
    body = ok(f"{api_url}{STA}")
    assert [v["name"] for v in body["value"]] == COLLECTIONS
    for v in body["value"]:
        assert v["url"] == f"{api_url}{STA}/{v['name']}"
    conf = body["serverSettings"]["conformance"]
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel" in conf
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data" in conf


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_every_link_resolves(api_url: str, dev: str, collection: str) -> None:
    filters = {
        "Things": f"id eq '{dev}'",
        "Datastreams": f"Thing/id eq '{dev}'",
        "Observations": f"Datastream/id eq '{ds(dev)}'",
        "Locations": f"id eq 'sta-site-{dev[4:]}'",
        "FeaturesOfInterest": f"id eq 'sta-site-{dev[4:]}'",
        "HistoricalLocations": f"Thing/id eq '{dev}'",
    }
    params = {"$top": "2"}
    if collection in filters:
        params["$filter"] = filters[collection]
    body = ok(f"{api_url}{STA}/{collection}", **params)
    assert body["value"], f"{collection} is empty"
    for ent in body["value"]:
        assert ent["@iot.selfLink"].startswith(f"{api_url}{STA}/{collection}(")
        again = ok(ent["@iot.selfLink"])
        assert again["@iot.id"] == ent["@iot.id"]
        assert again == ent
        navs = [k for k in ent if k.endswith("@iot.navigationLink")]
        assert navs, f"{collection} has no navigation links"
        for key in navs:
            link = ent[key]
            assert link == f"{ent['@iot.selfLink']}/{key.split('@')[0]}"
            nav = ok(link)
            if "value" in nav:
                for e in nav["value"][:3]:
                    assert ok(e["@iot.selfLink"])["@iot.id"] == e["@iot.id"]
            else:
                assert ok(nav["@iot.selfLink"])["@iot.id"] == nav["@iot.id"]


def test_navigation_thing_datastreams_observations(api_url: str, dev: str, pg_url: str) -> None:
    thing = ok(f"{api_url}{STA}/Things('{dev}')")
    assert thing["properties"]["site_type"] == "school"
    assert thing["properties"]["sensor_model"] == "sds011"
    assert thing["properties"]["calibration_status"] == "calibrated"
    dss = ok(thing["Datastreams@iot.navigationLink"])["value"]
    ids = {d["@iot.id"] for d in dss}
    # an SDS011 measures PM2.5 and PM10 (MODEL_QUANTITIES): each raw and calibrated
    assert ids == {
        ds(dev),
        ds(dev, "pm10_ugm3"),
        ds(dev, kind="calibrated"),
        ds(dev, "pm10_ugm3", "calibrated"),
    }
    pm25 = next(d for d in dss if d["@iot.id"] == ds(dev))
    assert pm25["unitOfMeasurement"] == {
        "name": "microgram per cubic metre",
        "symbol": "µg/m³",
        "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3",
    }
    assert pm25["phenomenonTime"] == "2025-06-01T00:00:00Z/2025-06-01T04:59:00Z"
    op = ok(pm25["ObservedProperty@iot.navigationLink"])
    assert op["definition"] == "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/6001"
    assert ok(pm25["Sensor@iot.navigationLink"])["@iot.id"] == "sds011"
    obs = ok(pm25["Observations@iot.navigationLink"], **{"$count": "true", "$top": "5"})
    assert obs["@iot.count"] == N
    newest = obs["value"][0]
    assert newest["phenomenonTime"] == "2025-06-01T04:59:00Z"  # newest first by default
    assert newest["result"] == 5.0 + (299 * 7) % 23
    assert newest["@iot.id"] == f"{ds(dev)}:20250601T045900Z:299"
    assert ok(newest["Datastream@iot.navigationLink"])["@iot.id"] == ds(dev)
    foi = ok(newest["FeatureOfInterest@iot.navigationLink"])
    assert foi["feature"] == {"type": "Point", "coordinates": [10.75, 59.91]}
    # calibrated: the values of calibrated_current, with uncertainty and version
    cal = ok(f"{api_url}{STA}/Datastreams('{ds(dev, kind='calibrated')}')/Observations",
             **{"$top": "1000", "$orderby": "phenomenonTime asc"})["value"]  # fmt: skip
    with psycopg.connect(pg_url) as conn:
        want = conn.execute(
            "SELECT seq, value::float8, u::float8, version_id FROM calibrated_current "
            "WHERE device_id = %s AND pollutant = 'pm25' ORDER BY ts",
            (dev,),
        ).fetchall()
    assert len(want) == N
    got = [
        (o["parameters"]["seq"], o["result"], o["resultQuality"]["uncertainty"],
         o["resultQuality"]["calibration_version"])
        for o in cal
    ]  # fmt: skip
    assert got == [tuple(w) for w in want]


def test_filter_on_phenomenon_time_returns_the_database_rows(
    api_url: str, dev: str, pg_url: str
) -> None:
    a, b = T0 + timedelta(minutes=41), T0 + timedelta(minutes=173, seconds=30)
    body = ok(
        f"{api_url}{STA}/Datastreams('{ds(dev, 'pm10_ugm3')}')/Observations",
        **{
            "$filter": f"phenomenonTime ge {a:%Y-%m-%dT%H:%M:%SZ} and "
            f"phenomenonTime lt {b:%Y-%m-%dT%H:%M:%S}+00:00 and result ge 0",
            "$top": "1000",
            "$orderby": "phenomenonTime",
        },
    )
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT ts, pm10_ugm3 FROM readings WHERE device_id = %s AND ts >= %s AND ts < %s "
            "ORDER BY ts",
            (dev, a, b),
        ).fetchall()
    assert len(rows) == 133
    assert [(o["phenomenonTime"], o["result"]) for o in body["value"]] == [
        (ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), v) for ts, v in rows
    ]
    # the same through the top-level collection, and with quoted instants and 'or'
    alt = ok(
        f"{api_url}{STA}/Observations",
        **{
            "$filter": f"Datastream/id eq '{ds(dev, 'pm10_ugm3')}' and "
            f"not (phenomenonTime lt '{a.isoformat()}' or phenomenonTime ge '{b.isoformat()}')",
            "$top": "1000",
            "$orderby": "phenomenonTime asc",
            "$select": "result,phenomenonTime",
        },
    )
    want = [{"phenomenonTime": o["phenomenonTime"], "result": o["result"]} for o in body["value"]]
    assert alt["value"] == want


def test_result_quality_carries_flags(api_url: str, dev: str, pg_url: str) -> None:
    url = f"{api_url}{STA}/Datastreams('{ds(dev)}')/Observations"
    body = ok(url, **{"$filter": "resultQuality/flags mod 2 eq 1"})  # bit 0: warming_up
    assert [o["parameters"]["seq"] for o in body["value"]] == [7]
    quality = body["value"][0]["resultQuality"]
    assert "warming_up" in quality["flag_names"] and quality["valid"] is False
    with psycopg.connect(pg_url) as conn:
        (invalid,) = conn.execute(
            "SELECT count(*) FROM readings WHERE device_id = %s AND flags & %s <> 0",
            (dev, INVALID_MASK),
        ).fetchone() or (0,)
    got = ok(url, **{"$filter": "resultQuality/valid eq false", "$count": "true", "$top": "0"})
    assert got["@iot.count"] == invalid >= 1


def test_expand_datastreams_and_nested_options(api_url: str, dev: str) -> None:
    body = ok(f"{api_url}{STA}/Things", **{"$filter": f"id eq '{dev}'", "$expand": "Datastreams"})
    (thing,) = body["value"]
    assert len(thing["Datastreams"]) == 4
    for d in thing["Datastreams"]:
        assert d["@iot.selfLink"] == f"{api_url}{STA}/Datastreams('{d['@iot.id']}')"
    nested = ok(
        f"{api_url}{STA}/Things('{dev}')",
        **{
            "$select": "name",
            "$expand": "Datastreams($top=1;$filter=properties/kind eq 'raw' and "
            "properties/quantity ne 'pm1_ugm3';$expand=Observations($top=3;$select=result;"
            "$orderby=phenomenonTime asc))",
        },
    )
    assert set(nested) == {"name", "Datastreams", "Datastreams@iot.nextLink"}
    assert [d["@iot.id"] for d in nested["Datastreams"]] == [ds(dev)]
    rest = ok(nested["Datastreams@iot.nextLink"])
    assert [d["@iot.id"] for d in rest["value"]] == [ds(dev, "pm10_ugm3")]
    first = nested["Datastreams"][0]
    assert first["Observations"] == [{"result": 5.0 + (i * 7) % 23} for i in range(3)]
    more = ok(first["Observations@iot.nextLink"])
    assert [o["result"] for o in more["value"]] == [5.0 + (i * 7) % 23 for i in range(3, 6)]
    # Datastreams/Observations is the same as Datastreams($expand=Observations)
    path = ok(f"{api_url}{STA}/Things('{dev}')", **{"$expand": "Datastreams/Observations"})
    assert all("Observations" in d for d in path["Datastreams"])


def _walk(url: str, params: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    body = ok(url, **params)
    pages = 1
    while True:
        out += body["value"]
        if "@iot.nextLink" not in body:
            return out
        body = ok(body["@iot.nextLink"])
        pages += 1
        assert pages < 100


@pytest.mark.parametrize(
    "orderby",
    [None, "phenomenonTime asc", "result desc,phenomenonTime asc", "resultQuality/flags desc,id"],
)
def test_next_links_walk_the_whole_set(api_url: str, dev: str, orderby: str | None) -> None:
    params = {"$top": "70"}
    if orderby:
        params["$orderby"] = orderby
    got = _walk(f"{api_url}{STA}/Datastreams('{ds(dev)}')/Observations", params)
    seqs = [o["parameters"]["seq"] for o in got]
    assert sorted(seqs) == list(range(N))  # no duplicates, no gaps
    if orderby is None:
        assert seqs == list(range(N - 1, -1, -1))
    elif orderby == "phenomenonTime asc":
        assert seqs == list(range(N))
    elif orderby.startswith("result desc"):
        keys = [(-o["result"], o["phenomenonTime"]) for o in got]
        assert keys == sorted(keys)
    else:
        keys = [(-o["resultQuality"]["flags"], o["@iot.id"]) for o in got]
        assert keys == sorted(keys)


def test_top_skip_count(api_url: str, dev: str) -> None:
    url = f"{api_url}{STA}/Datastreams('{ds(dev)}')/Observations"
    body = ok(url, **{"$skip": "290", "$top": "20", "$count": "true",
                      "$orderby": "phenomenonTime asc"})  # fmt: skip
    assert body["@iot.count"] == N
    assert [o["parameters"]["seq"] for o in body["value"]] == list(range(290, 300))
    assert "@iot.nextLink" not in body
    assert ok(url, **{"$top": "0", "$count": "true"}) == {"@iot.count": N, "value": []}
    # the default page is 100, with a nextLink
    body = ok(url)
    assert len(body["value"]) == 100 and "@iot.nextLink" in body


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("Things", {"$top": "-1"}, "$top"),
        ("Things", {"$top": "abc"}, "$top"),
        ("Things", {"$top": "100001"}, "$top must be from 0 to 10000"),
        ("Things", {"$unknown": "1"}, "not supported"),
        ("Things", {"top": "1"}, "unknown query parameter"),
        ("Things", {"$filter": "name eq"}, "does not parse"),
        ("Things", {"$filter": "foo eq 1"}, "no property 'foo'"),
        ("Things", {"$filter": "Datastreams/id eq 'x'"}, "collection"),
        ("Things", {"$filter": "properties eq 'x'"}, "JSON object"),
        ("Things", {"$filter": "name"}, "must be a condition"),
        ("Things", {"$filter": "substringof('a', name)"}, "substringof"),
        ("Things", {"$filter": "geo.distance(name, name) lt 1"}, "not supported"),
        ("Observations", {"$filter": "result eq 'high'"}, "number is compared"),
        ("Observations", {"$filter": "phenomenonTime ge 2025-01-01T00:00:00"}, "UTC offset"),
        ("Observations", {"$filter": "phenomenonTime ge 'yesterday'"}, "ISO 8601"),
        ("Observations", {"$filter": "resultQuality eq 1"}, "object"),
        ("Things", {"$orderby": "name sideways"}, "asc or desc"),
        ("Things", {"$orderby": "properties"}, "cannot order"),
        ("Things", {"$select": "nope"}, "no property 'nope'"),
        ("Things", {"$expand": "Nope"}, "no navigation property 'Nope'"),
        ("Things", {"$expand": "Datastreams($top=x)"}, "$top"),
        ("Things", {"$count": "yes"}, "$count"),
        ("Things", {"$skiptoken": "x"}, "skiptoken"),
        ("Things", {"$resultFormat": "dataArray"}, "resultFormat"),
    ],
)
def test_malformed_options_are_400_with_a_message(
    api_url: str, path: str, params: dict[str, str], message: str
) -> None:
    r = get(f"{api_url}{STA}/{path}", **params)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]


@pytest.mark.parametrize(
    "path", ["Nope", "Things('no-such-device')", "Things(", "Things('x')/Nope",
             "HistoricalLocations('abc')", "Observations('x:y')", "Things/Datastreams"],
)  # fmt: skip
def test_unknown_paths_are_404(api_url: str, path: str) -> None:
    r = get(f"{api_url}{STA}/{path}")
    assert r.status_code == 404, r.text
    assert r.json()["message"]


# the client calls furl's deprecated pathstr itself (frost-sta-client 1.1.53)
@pytest.mark.filterwarnings("ignore:furl.pathstr is deprecated:DeprecationWarning")
def test_a_frost_client_browses_the_service(api_url: str, dev: str) -> None:
    """frost-sta-client (Fraunhofer IOSB's Python client of FROST-Server) finds, navigates
    and pages through the facade as through a FROST server."""
    import frost_sta_client as fsc

    service = fsc.SensorThingsService(f"{api_url}{STA}")
    (thing,) = list(service.things().query().filter(f"id eq '{dev}'").list())
    assert thing.properties["site_type"] == "school"
    streams = {d.id: d for d in thing.get_datastreams().query().list()}
    assert len(streams) == 4  # PM2.5 and PM10 of an SDS011, raw and calibrated
    found = service.datastreams().find(ds(dev, "pm10_ugm3"))
    assert found.name == streams[ds(dev, "pm10_ugm3")].name
    obs = list(found.get_observations().query().top(40).orderby("phenomenonTime", "ASC").list())
    assert [o.result for o in obs] == [9.0 + (i * 5) % 31 for i in range(N)]  # 8 pages
    assert service.observed_properties().find("no2_ppb").definition.endswith("/pollutant/8")


def test_writes_are_refused(api_url: str) -> None:
    r = httpx.post(f"{api_url}{STA}/Things", json={"name": "x"}, timeout=60)
    assert r.status_code == 405


def test_members_of_navigated_collections_belong_to_the_parent(
    api_url: str, dev: str, pg_url: str
) -> None:
    other = f"sta-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sps30')", (other,))
    theirs = ds(other)
    assert ok(f"{api_url}{STA}/Datastreams('{theirs}')")["@iot.id"] == theirs
    assert get(f"{api_url}{STA}/Things('{dev}')/Datastreams('{ds(dev)}')").status_code == 200
    assert get(f"{api_url}{STA}/Things('{dev}')/Datastreams('{theirs}')").status_code == 404
    newest = ok(f"{api_url}{STA}/Datastreams('{ds(dev)}')/Observations", **{"$top": "1"})
    oid = newest["value"][0]["@iot.id"]
    assert ok(f"{api_url}{STA}/Datastreams('{ds(dev)}')/Observations('{oid}')")["@iot.id"] == oid
    r = get(f"{api_url}{STA}/Datastreams('{ds(dev, 'pm10_ugm3')}')/Observations('{oid}')")
    assert r.status_code == 404
    # a filter naming another Datastream than the path gives nothing
    body = ok(
        f"{api_url}{STA}/Datastreams('{ds(dev)}')/Observations",
        **{"$filter": f"Datastream/id eq '{ds(dev, 'pm10_ugm3')}'"},
    )
    assert body["value"] == []
    site = f"sta-site-{dev[4:]}"
    via_site = ok(
        f"{api_url}{STA}/FeaturesOfInterest('{site}')/Observations",
        **{"$filter": f"Datastream/id eq '{ds(dev)}'", "$count": "true", "$top": "1"},
    )
    assert via_site["@iot.count"] == N


def test_property_and_value_paths(api_url: str, dev: str) -> None:
    assert ok(f"{api_url}{STA}/Things('{dev}')/name") == {"name": dev}
    r = get(f"{api_url}{STA}/Datastreams('{ds(dev)}')/Thing/name/$value")
    assert r.status_code == 200 and r.text == dev


def test_filter_values_are_parameters(api_url: str, dev: str) -> None:
    """A quote in a literal is data: it matches nothing and breaks nothing."""
    body = ok(f"{api_url}{STA}/Things", **{"$filter": "name eq 'x'' OR 1=1 --'"})
    assert body["value"] == []
    body = ok(f"{api_url}{STA}/Things", **{"$filter": f"name eq '{dev}' or name eq 'x''y'"})
    assert [t["@iot.id"] for t in body["value"]] == [dev]


_PIECES = st.sampled_from(
    ["result", "phenomenonTime", "name", "id", "properties/site", "Datastream/id",
     "resultQuality/valid", "eq", "ne", "gt", "lt", "and", "or", "not", "(", ")", "'a'",
     "''", "1", "-1.5e3", "2025-06-01T00:00:00Z", "null", "true", "add", "mod", "div",
     "contains(", ",", "year(", "now()", "/", "@iot.id", "$", "in", "('a','b')"]
)  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    coll=st.sampled_from(["Things", "Observations", "Datastreams", "Locations"]),
    words=st.lists(_PIECES | st.text(max_size=6), max_size=9),
)
def test_random_filters_never_give_a_server_error(
    api_url: str, coll: str, words: list[str]
) -> None:
    r = get(f"{api_url}{STA}/{coll}", **{"$filter": " ".join(words), "$top": "3"})
    assert r.status_code < 500, f"{' '.join(words)!r} -> {r.status_code}: {r.text[:300]}"


def test_sql_renders_with_a_real_quoting_context(pg_url: str) -> None:
    """The composed statement is valid SQL for PostgreSQL (EXPLAIN parses and plans it)."""
    from luftnett.api.sensorthings.entities import ENTITIES
    from luftnett.api.sensorthings.filters import to_sql
    from luftnett.api.sensorthings.model import Ctx, Params
    from luftnett.api.sensorthings.options import parse_filter

    p = Params()
    ent = ENTITIES["Observations"]
    where = to_sql(
        parse_filter("year(phenomenonTime) eq 2026 and contains(Datastream/Thing/name, 'a')"),
        ent,
        "e",
        Ctx(cal_on=True),
        p,
    )
    q = psycopg.sql.SQL("EXPLAIN SELECT * FROM ({}) e WHERE {}").format(
        ent.base(Ctx(cal_on=True), p), where
    )
    with psycopg.connect(pg_url) as conn:
        assert conn.execute(q, p.values).fetchall()


def test_datastreams_follow_the_sensor_models_quantities(api_url: str, pg_url: str) -> None:
    """A device gets the Datastreams of what its sensor model measures (MODEL_QUANTITIES), a
    model the registry does not know gets every column quantity; a value stored for a
    quantity the model does not measure is no Observation (it would have no Datastream)."""
    from luftnett.contracts.units import MODEL_QUANTITIES

    no2, odd = f"sta-{uuid.uuid4().hex[:8]}", f"sta-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'dgs-no2'), "
            "(%s, 'homemade')",
            (no2, odd),
        )
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, no2_ppb, flags, schema_version) VALUES "
            "(%s, 1, %s, 60, 60, 'dgs-no2', 99, 12, 0, 1)",
            (no2, T0),
        )
    got = {d["@iot.id"] for d in ok(f"{api_url}{STA}/Things('{no2}')/Datastreams")["value"]}
    assert got == {ds(no2, q) for q in MODEL_QUANTITIES["dgs-no2"]} | {
        ds(no2, "no2_ppb", "calibrated")
    }
    assert get(f"{api_url}{STA}/Datastreams('{ds(no2)}')").status_code == 404
    assert ok(f"{api_url}{STA}/Datastreams('{ds(no2, 'no2_ppb')}')")["@iot.id"]
    obs = ok(f"{api_url}{STA}/Datastreams('{ds(no2, 'no2_ppb')}')/Observations")["value"]
    assert [o["result"] for o in obs] == [12]
    # the PM2.5 value stored with it: no Datastream, so no Observation by its id either
    oid = obs[0]["@iot.id"].replace(":no2_ppb:", ":pm25_ugm3:")
    assert get(f"{api_url}{STA}/Observations('{oid}')").status_code == 404
    assert get(f"{api_url}{STA}/Observations('{obs[0]['@iot.id']}')").status_code == 200
    direct = get(f"{api_url}{STA}/Datastreams('{ds(no2)}')/Observations")
    assert direct.status_code == 404 or direct.json()["value"] == []
    n_odd = len(ok(f"{api_url}{STA}/Things('{odd}')/Datastreams")["value"])
    assert n_odd == 9  # six column quantities raw, three calibrated


def test_a_box_with_a_pm_sensor_and_the_no2_module_has_the_datastreams_of_both(
    api_url: str, pg_url: str
) -> None:
    """A box with an SDS011 and the NO2 module, its messages naming the SDS011 (the device's
    registered model): its Thing has the NO2 module's Datastreams beside the SDS011's, each
    with the sensor that measures it, and the NO2 readings are Observations. Before, the
    Datastreams were those of the registered model only, and the NO2 readings had none."""
    device = f"sta2-{uuid.uuid4().hex[:8]}"
    pm = contract.SensorInfo(model="sds011", serial="P1")
    no2 = contract.SensorInfo(model="dgs-no2", serial="N1")
    readings = []
    for i in range(10):
        ts = T0 + timedelta(days=2) + i * timedelta(minutes=1)
        readings += [
            contract.Reading(seq=2 * i, ts=ts, window_s=60, n_samples=60, sensor=pm,
                             values={"pm25_ugm3": 7.0 + i, "pm10_ugm3": 11.0}),
            contract.Reading(seq=2 * i + 1, ts=ts, window_s=60, n_samples=60, sensor=no2,
                             values={"no2_ppb": 20.0 + i, "temperature_c": 4, "rh_pct": 70}),
        ]  # fmt: skip
    payload = contract.encode(
        contract.ReadingsPayload(
            device_id=device, agent_version="test", sensor=pm, readings=readings
        )
    )
    item = validate_message("t", contract.readings_topic("t", device), payload)
    assert isinstance(item, Accepted)
    with psycopg.connect(pg_url) as conn:
        ensure_fleet_defaults(conn)
        conn.commit()
        assert Writer(conn, rollups=False).write([item]).stored == 20
    body = ok(f"{api_url}{STA}/Datastreams", **{
        "$filter": f"Thing/id eq '{device}'", "$expand": "Sensor", "$top": "100"})  # fmt: skip
    sensor_of = {d["@iot.id"]: d["Sensor"]["@iot.id"] for d in body["value"]}
    assert sensor_of[ds(device, "pm25_ugm3")] == "sds011"
    assert sensor_of[ds(device, "pm10_ugm3", "calibrated")] == "sds011"
    assert sensor_of[ds(device, "no2_ppb")] == "dgs-no2"
    assert sensor_of[ds(device, "no2_ppb", "calibrated")] == "dgs-no2"
    assert sensor_of[ds(device, "rh_pct")] == "dgs-no2"
    assert ds(device, "pm1_ugm3") not in sensor_of  # neither sensor measures PM1
    obs = ok(f"{api_url}{STA}/Datastreams('{ds(device, 'no2_ppb')}')/Observations",
             **{"$orderby": "phenomenonTime asc", "$top": "100"})  # fmt: skip
    assert [o["result"] for o in obs["value"]] == [20.0 + i for i in range(10)]
    cal = ok(f"{api_url}{STA}/Datastreams('{ds(device, 'no2_ppb', 'calibrated')}')/Observations",
             **{"$top": "100"})  # fmt: skip
    assert len(cal["value"]) == 10  # the NO2 module's fleet default, on its own readings
    sensors = ok(f"{api_url}{STA}/Sensors", **{"$filter": "id eq 'dgs-no2'"})
    assert [s["@iot.id"] for s in sensors["value"]] == ["dgs-no2"]
