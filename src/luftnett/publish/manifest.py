"""The archive's manifest: what is published, where, and in which dataset version.

``manifest.json`` at the archive root is the table of contents (as Delta Lake's log or an
Iceberg snapshot, in one small JSON file). Per dataset:

- ``chunks``: the published spans of days ``[start, end)`` (never across a month), each with
  its source ``watermark`` and its ``files`` (path, format, partition, rows, bytes, sha256);
- ``version``: bumped whenever the dataset's set of files changes;
- ``versions``: every version's full file list, so any earlier version stays readable. A file
  a new version replaces is moved under ``_history/`` (readers that scan the tree skip
  ``_``-prefixed directories, as Hive, Spark and pyarrow do) and the old lists point there.

Written only when something changed, with sorted keys: publishing twice leaves it
byte-for-byte the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from luftnett.errors import PublishError

__all__ = ["FORMAT", "HISTORY", "MANIFEST", "ChunkEntry", "DatasetState", "FileEntry", "Manifest"]

MANIFEST = "manifest.json"
HISTORY = "_history"
FORMAT = "luftnett-archive/1"


@dataclass(slots=True)
class FileEntry:
    path: str
    format: str  # "parquet" or "csv.gz"
    partition: dict[str, str]
    rows: int
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "partition": self.partition,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FileEntry:
        return cls(d["path"], d["format"], dict(d["partition"]), d["rows"], d["bytes"], d["sha256"])


@dataclass(slots=True)
class ChunkEntry:
    start: date
    end: date  # exclusive
    watermark: dict[str, Any]
    files: list[FileEntry] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.start.isoformat()}_{self.end.isoformat()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "watermark": self.watermark,
            "files": [f.to_json() for f in self.files],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ChunkEntry:
        return cls(
            date.fromisoformat(d["start"]),
            date.fromisoformat(d["end"]),
            dict(d["watermark"]),
            [FileEntry.from_json(f) for f in d["files"]],
        )


@dataclass(slots=True)
class DatasetState:
    version: int = 0
    chunks: dict[str, ChunkEntry] = field(default_factory=dict)
    versions: list[dict[str, Any]] = field(default_factory=list)

    def files(self) -> list[str]:
        """Paths of the current version's files, sorted."""
        return sorted(f.path for c in self.chunks.values() for f in c.files)

    def rows(self, fmt: str = "parquet") -> int:
        return sum(f.rows for c in self.chunks.values() for f in c.files if f.format == fmt)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "chunks": {k: self.chunks[k].to_json() for k in sorted(self.chunks)},
            "versions": self.versions,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DatasetState:
        chunks = {k: ChunkEntry.from_json(v) for k, v in d["chunks"].items()}
        return cls(int(d["version"]), chunks, list(d["versions"]))


@dataclass(slots=True)
class Manifest:
    datasets: dict[str, DatasetState] = field(default_factory=dict)

    def dataset(self, name: str) -> DatasetState:
        return self.datasets.setdefault(name, DatasetState())

    def version_files(self, name: str, version: int) -> list[str]:
        """File paths of ``version`` of a dataset (current or earlier)."""
        for v in self.dataset(name).versions:
            if v["version"] == version:
                return list(v["files"])
        have = [v["version"] for v in self.dataset(name).versions]
        raise PublishError(f"dataset {name!r} has no version {version} (versions: {have})")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "datasets": {k: self.datasets[k].to_json() for k in sorted(self.datasets)},
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def loads(cls, text: str, where: str = MANIFEST) -> Manifest:
        try:
            d = json.loads(text)
            if d.get("format") != FORMAT:
                raise PublishError(
                    f"{where} is not a luftnett archive manifest (format {d.get('format')!r}, "
                    f"expected {FORMAT!r}); publish into an empty directory or a luftnett "
                    "archive"
                )
            return cls({k: DatasetState.from_json(v) for k, v in d["datasets"].items()})
        except (ValueError, KeyError, TypeError) as exc:
            raise PublishError(
                f"{where} cannot be read ({exc}); restore it from a backup or publish into "
                "a new directory"
            ) from exc
