"""DCAT-AP catalogue records (JSON-LD) of the open-data archive (docs/publish.md).

The same builder as the records ``luftnett publish`` writes into the archive
(:mod:`luftnett.publish.catalogue`). With ``publish.target`` set, versions, formats, sizes and
the time span come from the archive's manifest and the distributions point at the archive
(``publish.base_url`` when set); without it they point at the API's own downloads and the
time span is the database's.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from psycopg.rows import tuple_row

from luftnett.api.deps import Conn, ReadAccess, SettingsDep
from luftnett.publish import catalogue as cat
from luftnett.publish.schema import DATASETS

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/catalogue", tags=["catalogue"], dependencies=[ReadAccess])

JSONLD = "application/ld+json"


async def _facts(conn: Conn, settings: Any) -> tuple[cat.Facts, bool]:
    f = cat.Facts()
    async with conn.cursor(row_factory=tuple_row) as cur:
        row = await (await cur.execute(cat.BBOX_SQL)).fetchone()
        if row and row[0] is not None:
            f.bbox = (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
        row = await (await cur.execute(cat.SPAN_SQL)).fetchone()
        if row and row[0] is not None:
            f.start, f.end = row[0].date(), row[1].date()
        row = await (await cur.execute(cat.HAS_CAL_SQL)).fetchone()
        if row and row[0]:
            rows = await (await cur.execute(cat.CAL_SQL)).fetchall()
            f.calibration_versions = [cat.cal_version(tuple(r)) for r in rows]
    target = settings.publish.target
    if target:
        from luftnett.publish.archive import open_target, read_manifest

        def manifest() -> Any:
            return read_manifest(open_target(target, write=False))

        cat.facts_from_manifest(f, await asyncio.to_thread(manifest))
        return f, True
    return f, False


def _access(request: Request, settings: Any, facts: cat.Facts, archived: bool) -> dict[str, Any]:
    if archived:
        base = settings.publish.base_url or settings.publish.target
        return {d: cat.archive_access(base, facts.formats.get(d, [])) for d in DATASETS}
    api = str(request.base_url).rstrip("/") + "/api/v1"
    # the datasets' own downloads: readings (raw) and hours, in the archive's columns; the
    # annotations have no download of their own: their JSON list (and each download's
    # metadata lists those of its query)
    access = {
        d: {"parquet-api": f"{api}/downloads/{f}.parquet", "csv": f"{api}/downloads/{f}.csv"}
        for d, f in (("raw", "readings"), ("hourly", "hourly"))
    }
    access["annotations"] = {"json": f"{api}/annotations"}
    return {d: access[d] for d in DATASETS}


@router.get(
    "",
    summary="DCAT-AP catalogue of the open data (JSON-LD)",
    description="A dcat:Catalog with a dcat:Dataset per published dataset (hourly, raw, "
    "annotations): "
    "titles and descriptions in bokmål and English, publisher, contact point, licence "
    "(publish.licence: NLOD 2.0 or CC BY 4.0), temporal and spatial coverage, update "
    "frequency, keywords, themes, distributions, and the data dictionary (csvw columns with "
    "units, the flag registry, the calibration versions). DCAT-AP-NO where it differs.",
    response_class=JSONResponse,
    responses={200: {"content": {JSONLD: {}}}},
)
async def catalogue(request: Request, conn: Conn, settings: SettingsDep) -> JSONResponse:
    facts, archived = await _facts(conn, settings)
    doc = cat.build_catalogue(facts, settings.publish, _access(request, settings, facts, archived))
    return JSONResponse(doc, media_type=JSONLD)


@router.get(
    "/{dataset}",
    summary="DCAT-AP record of one dataset (JSON-LD)",
    description="The dcat:Dataset record of `hourly`, `raw` or `annotations` as its own "
    "JSON-LD document.",
    response_class=JSONResponse,
    responses={200: {"content": {JSONLD: {}}}, 404: {"description": "unknown dataset"}},
)
async def dataset(
    request: Request,
    conn: Conn,
    settings: SettingsDep,
    dataset: Annotated[str, Path(description="hourly, raw or annotations", max_length=40)],
) -> JSONResponse:
    if dataset not in DATASETS:
        raise HTTPException(404, f"no dataset {dataset!r}; use one of: {', '.join(DATASETS)}")
    facts, archived = await _facts(conn, settings)
    access = _access(request, settings, facts, archived)[dataset]
    return JSONResponse(
        cat.dataset_document(facts, settings.publish, access, dataset), media_type=JSONLD
    )
