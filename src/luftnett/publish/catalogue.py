"""DCAT-AP catalogue records (JSON-LD) of the published datasets, DCAT-AP-NO where it differs.

One ``dcat:Catalog`` with a ``dcat:Dataset`` per dataset (``hourly``, ``raw``,
``annotations``), each with its distributions (Parquet, and gzipped CSV where published). What
DCAT-AP and DCAT-AP-NO ask for: title and description in bokmål and English, publisher
(``foaf:Agent``; DCAT-AP-NO identifies it by organisation number), contact point
(``vcard:Organization`` with e-mail), keywords, themes (EU data themes), access rights
(public), accrual periodicity (daily), temporal coverage (``dct:PeriodOfTime``), spatial
coverage (``dcat:bbox`` of the sites, WKT), and on each distribution ``dcat:accessURL``,
``dct:format``, ``dcat:mediaType`` and ``dct:license`` (NLOD 2.0 or CC BY 4.0 from the EU
licence authority list).

The data dictionary rides along: ``csvw:tableSchema`` lists every column with its datatype,
unit (``schema:unitText``) and meaning; the flag registry is a ``skos:ConceptScheme``; the
calibration versions are ``prov:Entity`` nodes under ``prov:wasDerivedFrom``.

The archive gets these records in ``catalogue/`` (:func:`write_catalogue`); the API serves
the same builder's output at ``/api/v1/catalogue`` (``luftnett.api.routers.catalogue``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from luftnett.api.quality import FLAG_BITS, INVALID_MASK
from luftnett.contracts.units import (
    COLLECTOR_FLAGS,
    EDGE_FLAGS,
    FLAGS_VERSION,
    QUERY_TIME_FLAGS,
)
from luftnett.publish.manifest import Manifest
from luftnett.publish.schema import DATASETS, POLLUTANTS, fields
from luftnett.settings import PublishSettings

__all__ = [
    "CONTEXT",
    "LICENCES",
    "Facts",
    "archive_access",
    "build_catalogue",
    "build_dataset",
    "write_catalogue",
]

EU = "http://publications.europa.eu/resource/authority"

#: licence setting -> (EU licence authority URI, human label)
LICENCES: dict[str, tuple[str, str]] = {
    "NLOD-2.0": (f"{EU}/licence/NLOD_2_0", "Norsk lisens for offentlige data (NLOD) 2.0"),
    "CC-BY-4.0": (f"{EU}/licence/CC_BY_4_0", "Creative Commons Attribution 4.0 International"),
}

CONTEXT: dict[str, str] = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "csvw": "http://www.w3.org/ns/csvw#",
    "prov": "http://www.w3.org/ns/prov#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "gsp": "http://www.opengis.net/ont/geosparql#",
    "schema": "https://schema.org/",
    "adms": "http://www.w3.org/ns/adms#",
}

_TEXT: dict[str, dict[str, dict[str, str]]] = {
    "catalogue": {
        "title": {
            "nb": "Luftkvalitet fra luftnett-sensornettet",
            "en": "Air quality from the luftnett sensor network",
        },
        "description": {
            "nb": "Åpne data fra et nettverk av mikrosensorer for luftkvalitet: timesmidler og "
            "rådata, kalibrert og kvalitetsflagget, som Parquet-filer partisjonert etter "
            "datasett, forurensningskomponent, år og måned.",
            "en": "Open data from an air-quality microsensor network: hourly means and raw "
            "readings, calibrated and quality-flagged, as Parquet files partitioned by "
            "dataset, pollutant, year and month.",
        },
    },
    "hourly": {
        "title": {
            "nb": "Luftkvalitet, timesmidler fra mikrosensorer",
            "en": "Air quality, hourly means from microsensors",
        },
        "description": {
            "nb": "Timesmidler per sensor og komponent (PM1, PM2,5, PM10, NO2): rå og "
            "kalibrerte middelverdier, usikkerhet, kalibreringsversjon, dekningsgrad og "
            "gyldighet. Indikative målinger, ikke grunnlag for vurdering av grenseverdier. "
            "Partisjonert som dataset=hourly/pollutant=<komponent>/year=<år>/month=<måned>.",
            "en": "Hourly means per sensor and pollutant (PM1, PM2.5, PM10, NO2): raw and "
            "calibrated means, uncertainty, calibration version, coverage and validity. "
            "Indicative measurements, not evidence of compliance with limit values. "
            "Partitioned as dataset=hourly/pollutant=<code>/year=<year>/month=<month>.",
        },
    },
    "annotations": {
        "title": {
            "nb": "Luftkvalitet, merknader til måleperioder",
            "en": "Air quality, staff annotations of measuring periods",
        },
        "description": {
            "nb": "Perioder der kommunens ansatte har merket en sensor (vedlikehold, "
            "veiarbeid, fyrverkeri, tåke, annet), med begrunnelse og om målingene er tatt ut "
            "av statistikken (annotated_invalid i rådataene); også tilbaketrukne merknader. "
            "Partisjonert som dataset=annotations/year=<år>/month=<måned> etter månedene "
            "perioden berører.",
            "en": "Periods staff marked on a sensor (maintenance, roadworks, fireworks, fog, "
            "other), with the reason and whether the readings leave the statistics "
            "(annotated_invalid in the raw readings); revoked ones included. Partitioned as "
            "dataset=annotations/year=<year>/month=<month> by the months the period touches.",
        },
    },
    "raw": {
        "title": {
            "nb": "Luftkvalitet, rådata fra mikrosensorer",
            "en": "Air quality, raw readings from microsensors",
        },
        "description": {
            "nb": "Hver lagrede måling (typisk ett minutts middel) med alle størrelser, "
            "kalibrerte verdier med usikkerhet og kalibreringsversjon, kvalitetsflagg og "
            "gyldighet, tid i UTC og lokal tid. Indikative målinger. Partisjonert som "
            "dataset=raw/year=<år>/month=<måned>.",
            "en": "Every stored reading (typically a one-minute mean) with all quantities, "
            "calibrated values with uncertainty and calibration version, quality flags and "
            "validity, time in UTC and local time. Indicative measurements. Partitioned as "
            "dataset=raw/year=<year>/month=<month>.",
        },
    },
}

_KEYWORDS = {
    "nb": ["luftkvalitet", "svevestøv", "PM2,5", "PM10", "nitrogendioksid", "sensorer"],
    "en": ["air quality", "particulate matter", "PM2.5", "PM10", "nitrogen dioxide", "sensors"],
}

_XSD = {
    "string": "string",
    "int64": "long",
    "float32": "float",
    "float64": "double",
    "bool": "boolean",
    "timestamp": "dateTimeStamp",
    "local": "dateTime",
}


def _lang(texts: dict[str, str]) -> list[dict[str, str]]:
    return [{"@value": v, "@language": k} for k, v in texts.items()]


def _date(d: date) -> dict[str, str]:
    return {"@value": d.isoformat(), "@type": "xsd:date"}


@dataclass(slots=True)
class Facts:
    """What the records say about the data: coverage and calibration versions."""

    #: (south, west, north, east) of the sites, WGS84
    bbox: tuple[float, float, float, float] | None = None
    #: first and last day covered
    start: date | None = None
    end: date | None = None
    calibration_versions: list[dict[str, Any]] = field(default_factory=list)
    #: dataset -> version in the archive (0: not published)
    versions: dict[str, int] = field(default_factory=dict)
    #: dataset -> formats published ("parquet", "csv.gz")
    formats: dict[str, list[str]] = field(default_factory=dict)
    #: dataset -> total bytes of its Parquet files
    byte_size: dict[str, int] = field(default_factory=dict)
    modified: date | None = None


#: facts from the database (the same statements for the CLI's and the API's connections)
BBOX_SQL = (
    "SELECT min(lat), min(lon), max(lat), max(lon) FROM sites "
    "WHERE lat IS NOT NULL AND lon IS NOT NULL"
)
SPAN_SQL = """
SELECT min(x.a), max(x.b) FROM devices d,
  LATERAL (SELECT min(ts) AS a, max(ts) AS b FROM readings r WHERE r.device_id = d.device_id) x
"""
CAL_SQL = """
SELECT version_id, device_id, sensor_model, pollutant, kind, model_id, status, created_at
FROM calibration_versions ORDER BY version_id
"""
HAS_CAL_SQL = "SELECT to_regclass('calibration_versions') IS NOT NULL"


def cal_version(row: tuple[Any, ...]) -> dict[str, Any]:
    vid, device, model, pollutant, kind, model_id, status, created = row
    return {
        "version_id": int(vid),
        "device_id": device,
        "sensor_model": model,
        "pollutant": pollutant,
        "kind": kind,
        "model_id": model_id,
        "status": status,
        "created_at": created.astimezone(UTC).isoformat(),
    }


def facts_from_db(conn: Any) -> Facts:
    """Facts from a (sync) psycopg connection: bbox, time span, calibration versions."""
    f = Facts()
    row = conn.execute(BBOX_SQL).fetchone()
    if row and row[0] is not None:
        f.bbox = (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
    row = conn.execute(SPAN_SQL).fetchone()
    if row and row[0] is not None:
        f.start, f.end = row[0].astimezone(UTC).date(), row[1].astimezone(UTC).date()
    row = conn.execute(HAS_CAL_SQL).fetchone()
    if row and row[0]:
        f.calibration_versions = [cal_version(tuple(r)) for r in conn.execute(CAL_SQL)]
    return f


def facts_from_manifest(f: Facts, manifest: Manifest) -> Facts:
    """Versions, formats, sizes and the time span actually published."""
    spans = []
    for name, ds in manifest.datasets.items():
        f.versions[name] = ds.version
        files = [x for c in ds.chunks.values() for x in c.files]
        f.formats[name] = sorted({x.format for x in files})
        f.byte_size[name] = sum(x.bytes for x in files if x.format == "parquet")
        spans += [(c.start, c.end) for c in ds.chunks.values() if c.files]
        if ds.versions:
            f.modified = max(
                f.modified or date.min,
                datetime.fromisoformat(ds.versions[-1]["published_at"]).date(),
            )
    if spans:
        from datetime import timedelta

        f.start = min(a for a, _ in spans)
        f.end = max(b for _, b in spans) - timedelta(days=1)
    return f


def _agent(s: PublishSettings) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "@id": f"{s.identifier_base}/publisher",
        "@type": "foaf:Agent",
        "foaf:name": s.publisher_name,
    }
    if s.publisher_id:
        agent["@id"] = f"https://data.brreg.no/enhetsregisteret/api/enheter/{s.publisher_id}"
        agent["dct:identifier"] = s.publisher_id
    return agent


def _contact(s: PublishSettings) -> dict[str, Any]:
    return {
        "@type": "vcard:Organization",
        "vcard:fn": s.contact_name,
        "vcard:hasEmail": {"@id": f"mailto:{s.contact_email}"},
    }


def _flag_scheme(base: str) -> dict[str, Any]:
    def raised_by(bit: int) -> str:
        by = [n for n, m in (("edge", EDGE_FLAGS), ("collector", COLLECTOR_FLAGS)) if bit & m]
        if bit & QUERY_TIME_FLAGS:
            by.append("query time (staff annotation)")
        return ", ".join(by)

    return {
        "@id": f"{base}/flags/v{FLAGS_VERSION}",
        "@type": "skos:ConceptScheme",
        "skos:prefLabel": f"luftnett quality flag registry, version {FLAGS_VERSION}",
        "skos:definition": "bit mask in the flags column; a reading with any invalidating "
        f"bit (mask {INVALID_MASK}) is not valid; see docs/quality.md",
        "skos:hasTopConcept": [
            {
                "@id": f"{base}/flags/v{FLAGS_VERSION}/{name}",
                "@type": "skos:Concept",
                "skos:notation": {"@value": str(bit), "@type": "xsd:integer"},
                "skos:prefLabel": name,
                "skos:definition": f"bit {bit.bit_length() - 1} (value {bit}); raised by "
                f"{raised_by(bit)}; "
                + ("invalidates the reading" if bit & INVALID_MASK else "informative only"),
            }
            for name, bit in FLAG_BITS.items()
        ],
    }


def _table_schema(dataset: str, timezone: str) -> dict[str, Any]:
    cols = []
    for f in fields(dataset, timezone):  # type: ignore[arg-type]
        col: dict[str, Any] = {
            "@type": "csvw:Column",
            "csvw:name": f.name,
            "csvw:datatype": {"@id": f"xsd:{_XSD[f.arrow]}"},
            "dct:description": f.description,
        }
        if f.unit:
            col["schema:unitText"] = (
                "see the unit column (µg/m³ for PM, ppb for NO2)"
                if f.unit == "unit column"
                else f.unit
            )
        cols.append(col)
    if dataset == "hourly":
        cols.append(
            {
                "@type": "csvw:Column",
                "csvw:name": "pollutant",
                "csvw:datatype": {"@id": "xsd:string"},
                "dct:description": "partition key: " + ", ".join(POLLUTANTS.values()),
            }
        )
    cols += [
        {
            "@type": "csvw:Column",
            "csvw:name": key,
            "csvw:datatype": {"@id": "xsd:integer"},
            "dct:description": f"partition key: UTC {key} of the "
            + {"hourly": "hour", "raw": "reading"}.get(dataset, "month the period touches"),
        }
        for key in ("year", "month")
    ]
    return {"@type": "csvw:Schema", "csvw:column": cols}


_FORMATS = {
    "parquet": (
        f"{EU}/file-type/PARQUET",
        "https://www.iana.org/assignments/media-types/application/vnd.apache.parquet",
        {
            "nb": "Parquet-filer (zstd), Hive-partisjonert",
            "en": "Parquet files (zstd), Hive-partitioned",
        },
    ),
    "csv.gz": (
        f"{EU}/file-type/CSV",
        "https://www.iana.org/assignments/media-types/text/csv",
        {"nb": "CSV-filer (gzip), samme partisjoner", "en": "CSV files (gzip), same partitions"},
    ),
    "parquet-api": (
        f"{EU}/file-type/PARQUET",
        "https://www.iana.org/assignments/media-types/application/vnd.apache.parquet",
        {"nb": "Parquet-nedlasting fra API-et", "en": "Parquet download from the API"},
    ),
    "csv": (
        f"{EU}/file-type/CSV",
        "https://www.iana.org/assignments/media-types/text/csv",
        {"nb": "CSV-nedlasting fra API-et", "en": "CSV download from the API"},
    ),
    "json": (
        f"{EU}/file-type/JSON",
        "https://www.iana.org/assignments/media-types/application/json",
        {"nb": "JSON fra API-et", "en": "JSON from the API"},
    ),
}


def archive_access(base: str, formats: list[str]) -> dict[str, str]:
    """Access URL per format of an archive at ``base``."""
    base = base.rstrip("/")
    return {f: base if f == "parquet" else f"{base}/csv" for f in formats or ["parquet"]}


def build_dataset(
    name: str, facts: Facts, s: PublishSettings, access: dict[str, str]
) -> dict[str, Any]:
    """The ``dcat:Dataset`` record of ``name`` (without ``@context``); ``access`` maps each
    distribution's format ("parquet", "csv.gz", "csv") to its access URL."""
    base = s.identifier_base.rstrip("/")
    lic_uri, lic_label = LICENCES[s.licence]
    dists = []
    for fmt, url in access.items():
        ftype, media, title = _FORMATS[fmt]
        where = (
            {
                "nb": f"Filene under {url}/dataset={name}/; manifest.json lister gjeldende "
                "og tidligere versjoner.",
                "en": f"The files under {url}/dataset={name}/; manifest.json lists the "
                "current and earlier versions.",
            }
            if fmt in ("parquet", "csv.gz")
            else {
                "nb": f"Strømmet nedlasting: {url} (parametre i API-dokumentasjonen).",
                "en": f"Streamed download: {url} (parameters in the API documentation).",
            }
        )
        dist: dict[str, Any] = {
            "@id": f"{base}/datasets/{name}/{fmt.replace('.', '-')}",
            "@type": "dcat:Distribution",
            "dct:title": _lang(title),
            "dct:description": _lang(where),
            "dcat:accessURL": {"@id": url},
            "dct:format": {"@id": ftype},
            "dcat:mediaType": {"@id": media},
            "dct:license": {"@id": lic_uri, "rdfs:label": lic_label},
            "dct:conformsTo": {"@id": f"{base}/datasets/{name}#schema"},
        }
        if fmt == "parquet" and facts.byte_size.get(name):
            dist["dcat:byteSize"] = {
                "@value": str(facts.byte_size[name]),
                "@type": "xsd:nonNegativeInteger",
            }
        dists.append(dist)
    rec: dict[str, Any] = {
        "@id": f"{base}/datasets/{name}",
        "@type": "dcat:Dataset",
        "dct:identifier": f"{base}/datasets/{name}",
        "dct:title": _lang(_TEXT[name]["title"]),
        "dct:description": _lang(_TEXT[name]["description"]),
        "dct:publisher": _agent(s),
        "dcat:contactPoint": _contact(s),
        "dcat:keyword": [
            {"@value": k, "@language": lang} for lang, ks in _KEYWORDS.items() for k in ks
        ],
        "dcat:theme": [{"@id": f"{EU}/data-theme/ENVI"}, {"@id": f"{EU}/data-theme/HEAL"}],
        "dct:accessRights": {"@id": f"{EU}/access-right/PUBLIC"},
        "dct:accrualPeriodicity": {"@id": f"{EU}/frequency/DAILY"},
        "dct:language": [{"@id": f"{EU}/language/NOB"}, {"@id": f"{EU}/language/ENG"}],
        "dcat:distribution": dists,
        "csvw:tableSchema": {
            "@id": f"{base}/datasets/{name}#schema",
            **_table_schema(name, s.timezone),
        },
        "dct:subject": _flag_scheme(base),
        "dct:provenance": {
            "@type": "dct:ProvenanceStatement",
            "rdfs:label": _lang(
                {
                    "nb": "Indikative målinger fra mikrosensorer, kalibrert mot referansestasjoner "
                    "(kalibreringsversjonene er listet); kvalitetsflagg etter luftnetts "
                    f"flaggregister versjon {FLAGS_VERSION}.",
                    "en": "Indicative measurements from microsensors, calibrated against "
                    "reference stations (calibration versions listed); quality flags from "
                    f"luftnett's flag registry version {FLAGS_VERSION}.",
                }
            ),
        },
        "prov:wasDerivedFrom": [
            {
                "@id": f"{base}/calibration/{v['version_id']}",
                "@type": "prov:Entity",
                "dct:identifier": str(v["version_id"]),
                "rdfs:label": f"calibration version {v['version_id']}: {v['pollutant']}, "
                f"{v['kind']}, {v['device_id'] or v['sensor_model']}, status {v['status']}",
                "dct:created": {"@value": v["created_at"], "@type": "xsd:dateTime"},
            }
            for v in facts.calibration_versions
        ],
    }
    if facts.versions.get(name):
        rec["dcat:version"] = str(facts.versions[name])
    if facts.modified:
        rec["dct:modified"] = _date(facts.modified)
    if facts.start and facts.end:
        rec["dct:temporal"] = {
            "@type": "dct:PeriodOfTime",
            "dcat:startDate": _date(facts.start),
            "dcat:endDate": _date(facts.end),
        }
    if facts.bbox:
        s_, w, n, e = facts.bbox
        if s_ == n or w == e:  # one site: a small box around it
            s_, w, n, e = s_ - 0.001, w - 0.001, n + 0.001, e + 0.001
        wkt = f"POLYGON(({w} {s_}, {e} {s_}, {e} {n}, {w} {n}, {w} {s_}))"
        rec["dct:spatial"] = {
            "@type": "dct:Location",
            "dcat:bbox": {"@value": wkt, "@type": "gsp:wktLiteral"},
        }
    return rec


def build_catalogue(
    facts: Facts,
    s: PublishSettings,
    access: dict[str, dict[str, str]],
    datasets: tuple[str, ...] = DATASETS,
) -> dict[str, Any]:
    """The ``dcat:Catalog`` with its datasets, as a JSON-LD document."""
    base = s.identifier_base.rstrip("/")
    cat: dict[str, Any] = {
        "@context": CONTEXT,
        "@id": base,
        "@type": "dcat:Catalog",
        "dct:title": _lang(_TEXT["catalogue"]["title"]),
        "dct:description": _lang(_TEXT["catalogue"]["description"]),
        "dct:publisher": _agent(s),
        "dct:license": {"@id": LICENCES[s.licence][0]},
        "dct:language": [{"@id": f"{EU}/language/NOB"}, {"@id": f"{EU}/language/ENG"}],
        "dcat:dataset": [build_dataset(d, facts, s, access[d]) for d in datasets],
    }
    if facts.modified:
        cat["dct:modified"] = _date(facts.modified)
    return cat


def dataset_document(
    facts: Facts, s: PublishSettings, access: dict[str, str], name: str
) -> dict[str, Any]:
    """One dataset's record as a JSON-LD document of its own."""
    return {"@context": CONTEXT, **build_dataset(name, facts, s, access)}


def _dumps(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


def write_catalogue(
    fs: Any,
    database_url: str,
    manifest: Manifest,
    s: PublishSettings,
    target: str,
    force: bool = False,
) -> None:
    """Write ``catalogue/catalog.jsonld`` and ``catalogue/<dataset>.jsonld`` into the archive
    when the manifest changed (``force``) or they are missing."""
    import psycopg
    import pyarrow.fs as pafs  # type: ignore[import-untyped]

    from luftnett.publish.archive import _write_atomic

    names = sorted(manifest.datasets)
    paths = ["catalogue/catalog.jsonld", *(f"catalogue/{n}.jsonld" for n in names)]
    if not force and all(fs.get_file_info(p).type == pafs.FileType.File for p in paths):
        return
    with psycopg.connect(database_url) as conn:
        facts = facts_from_manifest(facts_from_db(conn), manifest)
    if s.base_url:
        where = s.base_url
    elif "://" in target:
        where = target
    else:
        from pathlib import Path

        where = Path(target).expanduser().resolve().as_uri()
    access = {n: archive_access(where, facts.formats.get(n, [])) for n in names}
    _write_atomic(fs, paths[0], _dumps(build_catalogue(facts, s, access, tuple(names))))
    for n in names:
        doc = dataset_document(facts, s, access[n], n)
        _write_atomic(fs, f"catalogue/{n}.jsonld", _dumps(doc))
