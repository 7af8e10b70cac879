"""Exposure maps written by ``luftnett map build``: listed, and their files served as they are.

A map is a subdirectory of ``api.maps_dir`` (default ``<home>/maps``) holding ``layer.json``
(see docs/maps.md); its id is the directory name. Only the files of
:data:`luftnett.mapping.outputs.MAP_FILES` are served, from directories directly under
``maps_dir`` whose names are plain ids, so no path from a request reaches anything else.
"""

from __future__ import annotations

import json
import re
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import FileResponse

from luftnett.api.deps import ReadAccess, SettingsDep
from luftnett.settings import Settings

__all__ = ["maps_dir", "router"]

router = APIRouter(prefix="/api/v1/maps", tags=["maps"], dependencies=[ReadAccess])

MAP_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$"
_ID = re.compile(MAP_ID)
#: file name -> media type
_FILES = {
    "layer.png": "image/png",
    "layer.json": "application/json",
    "grid.geojson": "application/geo+json",
    "ranking.json": "application/json",
    "summary.md": "text/markdown; charset=utf-8",
}


def maps_dir(settings: Settings) -> FsPath:
    return settings.api.maps_dir or settings.home / "maps"


def _layer(d: FsPath) -> dict[str, Any] | None:
    try:
        doc = json.loads((d / "layer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or "bounds" not in doc or "scale" not in doc:
        return None
    return doc


def _summary(map_id: str, d: FsPath, layer: dict[str, Any]) -> dict[str, Any]:
    meta = layer.get("map") or {}
    base = f"/api/v1/maps/{map_id}"
    return {
        "map_id": map_id,
        "pollutant": meta.get("pollutant"),
        "unit": meta.get("unit"),
        "statistic": meta.get("statistic"),
        "period": meta.get("period"),
        "method": meta.get("method"),
        "values": meta.get("values"),
        "label": meta.get("label"),
        "loocv": meta.get("loocv"),
        "sites_used": meta.get("sites_used"),
        "bounds": layer["bounds"],
        "projection": layer.get("projection"),
        "opacity": layer.get("opacity"),
        "scale": layer["scale"],
        "modified": round((d / "layer.json").stat().st_mtime),
        "files": {
            name.replace(".", "_"): f"{base}/{name}" for name in _FILES if (d / name).is_file()
        },
    }


@router.get(
    "",
    summary="Exposure maps",
    description="The maps built with `luftnett map build --out <maps_dir>/<id>` (api.maps_dir, "
    "default <home>/maps), newest first: pollutant, period, method, LOOCV, the image layer's "
    "WGS84 bounds ([[south, west], [north, east]]) and colour scale, and the URLs of their "
    "files. An empty list when there are none (the dashboard then shows sites only).",
)
async def list_maps(settings: SettingsDep) -> dict[str, Any]:
    root = maps_dir(settings)
    out = []
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if d.is_dir() and _ID.match(d.name):
                layer = _layer(d)
                if layer is not None:
                    out.append(_summary(d.name, d, layer))
    out.sort(key=lambda m: (-m["modified"], m["map_id"]))
    return {"maps": out}


@router.get(
    "/{map_id}/{name}",
    summary="A file of an exposure map",
    description="layer.png (the image layer), layer.json (its bounds, colour scale and the "
    "map's metadata), grid.geojson (value and standard error per cell, WGS84), ranking.json "
    "(areas and receptors with 95 % intervals) or summary.md ('where to act', bokmål and "
    "English).",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in sorted(set(_FILES.values()))}}},
)
async def map_file(
    settings: SettingsDep,
    map_id: Annotated[str, Path(pattern=MAP_ID)],
    name: Annotated[str, Path(description="one of " + ", ".join(_FILES))],
) -> FileResponse:
    if name not in _FILES:
        raise HTTPException(404, f"no map file {name[:40]!r}; maps have " + ", ".join(_FILES))
    d = maps_dir(settings) / map_id
    if _layer(d) is None:
        raise HTTPException(404, f"no map {map_id!r}; GET /api/v1/maps lists them")
    path = d / name
    if not path.is_file():
        raise HTTPException(404, f"map {map_id!r} has no {name}")
    return FileResponse(path, media_type=_FILES[name])
