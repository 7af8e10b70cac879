"""Open-data publication: a Hive-partitioned Parquet archive and its DCAT-AP catalogue.

- :mod:`.schema`: the archive's fixed schemas and data dictionary (raw columns from the
  downloads' dictionary in ``luftnett.api.export``, one source);
- :mod:`.manifest`: the archive's table of contents: chunks, files, hashes, watermarks and
  dataset versions;
- :mod:`.source`: reading PostgreSQL into Arrow (ADBC, binary COPY) and the watermarks;
- :mod:`.archive`: :func:`~luftnett.publish.archive.publish`, idempotent and append-only;
- :mod:`.catalogue`: DCAT-AP (DCAT-AP-NO) JSON-LD records.

See docs/publish.md.
"""

from __future__ import annotations

__all__: list[str] = []
