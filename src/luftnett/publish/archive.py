"""`publish`: bring the archive up to date with the database, idempotently.

A run covers UTC days ``[start, end]`` and, per dataset, works in *chunks*: spans of days
inside one month, one file per chunk and partition (``hourly``: one per pollutant). Days of
the range that no chunk covers yet become new chunks (a backfill: whole months; the nightly
run: one day). Chunks already published that meet the range are re-checked: their watermark
(:mod:`luftnett.publish.source`) is computed again from a per-day aggregate and, only where
it differs (a late reading, a QC flag, a new calibration, annotation or deployment), the
chunk is read and written again. A file is named by its content hash, so identical content
keeps its file; different content gets a new file, the replaced one moves to ``_history/``
and the dataset version goes up (:mod:`luftnett.publish.manifest`). Nothing is ever
overwritten; an unchanged database leaves the archive byte-for-byte unchanged.

Files are written under a hidden temporary name and moved into place, then the manifest is
replaced; readers that list the tree skip ``.``- and ``_``-prefixed names.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from luftnett.errors import ConfigError, PublishError, StorageError
from luftnett.publish import source
from luftnett.publish.manifest import HISTORY, MANIFEST, ChunkEntry, FileEntry, Manifest
from luftnett.publish.schema import DATASETS, Dataset, arrow_schema
from luftnett.settings import PublishSettings

__all__ = ["Progress", "PublishResult", "open_target", "publish", "read_manifest"]

log = logging.getLogger(__name__)

#: rows gathered before a raw row group is written
ROW_GROUP = 131_072
#: dictionary-encode the strings only (on floats dictionaries cost 4x the time for ~25 %)
DICTIONARY: Any = ["device_id", "site_id", "sensor_model", "unit"]

LICENCE_URI = {
    "NLOD-2.0": "http://publications.europa.eu/resource/authority/licence/NLOD_2_0",
    "CC-BY-4.0": "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0",
}

#: what pyarrow raises for bad URLs and failed I/O (ArrowInvalid is a ValueError, ArrowIOError
#: an OSError, ArrowNotImplementedError a NotImplementedError)
_ARROW_ERRORS = (ValueError, OSError, NotImplementedError)

#: called as progress(chunks done, chunks to do, source rows read so far)
Progress = Callable[[int, int, int], None]


@dataclass(slots=True)
class DatasetResult:
    version: int = 0
    added: int = 0  # chunks new to the archive
    replaced: int = 0  # chunks whose files changed
    unchanged: int = 0  # chunks re-read whose content was the same
    skipped: int = 0  # chunks whose watermark had not moved (not read)
    files_written: int = 0
    rows_written: int = 0


@dataclass(slots=True)
class PublishResult:
    target: str
    start: date | None
    end: date | None
    datasets: dict[str, DatasetResult] = field(default_factory=dict)
    rows_read: int = 0
    seconds: float = 0.0
    changed: bool = False
    #: files deleted from _history/ (publish.keep_versions)
    pruned: int = 0

    def summary(self) -> str:
        if self.start is None:
            upto = f" up to {self.end}" if self.end else ""
            return f"nothing to publish: the database has no readings{upto} ({self.target})"
        parts = [
            f"{name} v{r.version}: {r.added} new, {r.replaced} replaced, {r.unchanged} "
            f"unchanged, {r.skipped} up to date, {r.files_written} files, "
            f"{r.rows_written:,} rows"
            for name, r in self.datasets.items()
        ]
        return (
            f"published {self.start}..{self.end} to {self.target}: "
            + "; ".join(parts)
            + f" ({self.rows_read:,} source rows in {self.seconds:.1f} s)"
            + (f"; {self.pruned} old files pruned from {HISTORY}/" if self.pruned else "")
        )


def open_target(target: str, write: bool = True) -> Any:
    """A pyarrow filesystem rooted at ``target``: a local path or any URL pyarrow knows
    (``file:///srv/archive``, ``s3://bucket/prefix``, ...). With ``write``, creates the root
    directory and checks that it is writable."""
    import pyarrow.fs as pafs  # type: ignore[import-untyped]

    try:
        if "://" in target:
            base, root = pafs.FileSystem.from_uri(target)
        else:
            base, root = pafs.LocalFileSystem(), str(Path(target).expanduser().resolve())
    except _ARROW_ERRORS as exc:
        raise ConfigError(
            f"--to {target!r} is not a path or a filesystem URL pyarrow can open ({exc}); "
            "use a directory or e.g. file:///srv/luftnett-archive"
        ) from exc
    if not write:
        return pafs.SubTreeFileSystem(root, base)
    try:
        base.create_dir(root, recursive=True)
        fs = pafs.SubTreeFileSystem(root, base)
        probe = f".write-test-{uuid.uuid4().hex}"
        with fs.open_output_stream(probe, compression=None) as out:
            out.write(b"ok")
        fs.delete_file(probe)
    except _ARROW_ERRORS as exc:
        raise PublishError(
            f"cannot write to the archive {target!r} ({exc}); check that the location exists "
            "and this user may write there"
        ) from exc
    return fs


def read_manifest(fs: Any) -> Manifest:
    import pyarrow.fs as pafs

    if fs.get_file_info(MANIFEST).type == pafs.FileType.NotFound:
        return Manifest()
    with fs.open_input_stream(MANIFEST) as f:
        return Manifest.loads(f.read().decode("utf-8"))


def _write_atomic(fs: Any, path: str, data: bytes) -> None:
    parent = path.rpartition("/")[0]
    if parent:
        fs.create_dir(parent, recursive=True)
    tmp = f"{parent + '/' if parent else ''}.tmp-{uuid.uuid4().hex}"
    with fs.open_output_stream(tmp, compression=None) as out:
        out.write(data)
    fs.move(tmp, path)


class _HashingSink(io.RawIOBase):
    """A write-only file that hashes and counts what goes through to ``out``."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        mv = memoryview(b)
        self.sha.update(mv)
        self.out.write(mv)
        self.n += mv.nbytes
        return mv.nbytes

    def tell(self) -> int:
        return self.n


def _partition_dir(dataset: str, start: date, pollutant: str | None) -> str:
    pol = f"pollutant={pollutant}/" if pollutant else ""
    return f"dataset={dataset}/{pol}year={start.year}/month={start.month}"


@dataclass(slots=True)
class _Task:
    dataset: Dataset
    start: date
    end: date
    old: ChunkEntry | None


@dataclass(slots=True)
class _Done:
    task: _Task
    entry: ChunkEntry
    rows_read: int
    rows_written: int
    files_written: int


class _Writer:
    """Writes one chunk's files: Parquet (zstd) and, on request, gzipped CSV."""

    def __init__(
        self, fs: Any, csv: bool, metadata: dict[str, str], compression: str = "zstd"
    ) -> None:
        self.fs = fs
        self.csv = csv
        self.metadata = metadata
        self.compression = compression

    def _finish(
        self, tmp: str, sink: _HashingSink, final_dir: str, stem: str, ext: str, old: set[str]
    ) -> tuple[str, str, int, bool]:
        digest = sink.sha.hexdigest()
        path = f"{final_dir}/{stem}-{digest[:12]}.{ext}"
        if path in old:  # same content as published: keep that file
            self.fs.delete_file(tmp)
            return path, digest, sink.n, False
        self.fs.move(tmp, path)
        return path, digest, sink.n, True

    def write(
        self,
        tables: Any,
        schema: Any,
        final_dir: str,
        stem: str,
        partition: dict[str, str],
        old: set[str],
    ) -> tuple[list[FileEntry], int, int]:
        """Write the tables (an iterable) as one Parquet file (and a CSV): (entries, rows,
        files actually written)."""
        import pyarrow as pa
        import pyarrow.csv as pacsv  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        self.fs.create_dir(final_dir, recursive=True)
        schema = schema.with_metadata(self.metadata)
        tmp = f"{final_dir}/.tmp-{uuid.uuid4().hex}.parquet"
        csv_dir = f"csv/{final_dir}"
        rows = 0
        with self.fs.open_output_stream(tmp, compression=None) as raw_out:
            sink = _HashingSink(raw_out)
            writer = pq.ParquetWriter(
                sink, schema, compression=self.compression, use_dictionary=DICTIONARY
            )
            csv_sink = csv_out = csv_stream = csv_writer = None
            csv_tmp = ""
            if self.csv:
                self.fs.create_dir(csv_dir, recursive=True)
                csv_tmp = f"{csv_dir}/.tmp-{uuid.uuid4().hex}.csv.gz"
                csv_out = self.fs.open_output_stream(csv_tmp, compression=None)
                csv_sink = _HashingSink(csv_out)
                csv_stream = pa.CompressedOutputStream(csv_sink, "gzip")
                csv_writer = pacsv.CSVWriter(csv_stream, schema)
            try:
                pending: list[Any] = []
                n_pending = 0
                for t in tables:
                    pending.append(t)
                    n_pending += t.num_rows
                    if n_pending >= ROW_GROUP:
                        batch = pa.concat_tables(pending)
                        writer.write_table(batch, row_group_size=max(1, n_pending))
                        if csv_writer is not None:
                            csv_writer.write_table(batch)
                        rows += n_pending
                        pending, n_pending = [], 0
                if n_pending:
                    batch = pa.concat_tables(pending)
                    writer.write_table(batch, row_group_size=n_pending)
                    if csv_writer is not None:
                        csv_writer.write_table(batch)
                    rows += n_pending
            finally:
                writer.close()
                if csv_writer is not None:
                    assert csv_stream is not None
                    assert csv_out is not None
                    csv_writer.close()
                    csv_stream.close()
                    csv_out.close()
        if rows == 0:
            self.fs.delete_file(tmp)
            if csv_tmp:
                self.fs.delete_file(csv_tmp)
            return [], 0, 0
        entries = []
        written = 0
        path, digest, size, new = self._finish(tmp, sink, final_dir, stem, "parquet", old)
        entries.append(FileEntry(path, "parquet", partition, rows, size, digest))
        written += new
        if csv_sink is not None:
            path, digest, size, new = self._finish(csv_tmp, csv_sink, csv_dir, stem, "csv.gz", old)
            entries.append(FileEntry(path, "csv.gz", partition, rows, size, digest))
            written += new
        return entries, rows, written


def _run_task(task: _Task, src: source.Source, writer: _Writer, state: str) -> _Done:
    stem = f"part-{task.start:%Y%m%d}-{task.end - timedelta(days=1):%Y%m%d}"
    old = {f.path for f in task.old.files} if task.old else set()
    base = {"year": str(task.start.year), "month": str(task.start.month)}
    files: list[FileEntry] = []
    written = rows_written = 0
    if task.dataset == "annotations":  # no calibration in it: the state and its rows' digest
        # (taken before the rows are read, as the others' markers below)
        days = source.day_watermarks(src.conn, "annotations", task.start, task.end)
        marker = source.chunk_watermark("annotations", days, task.start, task.end, state, {})
        t = src.annotations(task.start, task.end)
        files, rows_written, written = writer.write(
            [t],
            arrow_schema("annotations", src.timezone),
            _partition_dir("annotations", task.start, None),
            stem,
            base,
            old,
        )
        entry = ChunkEntry(task.start, task.end, marker, files)
        return _Done(task, entry, t.num_rows, rows_written, written)
    # read before the rows: a value added meanwhile is in the files but not in the marker,
    # so the next run reads the chunk again (never the other way round)
    cal = source.cal_marker(source.cal_days(src.conn, task.start, task.end), task.start, task.end)
    if task.dataset == "raw":
        wms: list[dict[str, Any]] = []

        def tables() -> Any:
            for t, wm in src.raw(task.start, task.end):
                wms.append(wm)
                yield t

        files, rows_written, written = writer.write(
            tables(),
            arrow_schema("raw", src.timezone),
            _partition_dir("raw", task.start, None),
            stem,
            base,
            old,
        )
        newest = max((w["newest"] for w in wms), default=None)
        wm: dict[str, Any] = {
            "rows": sum(w["rows"] for w in wms),
            "newest": newest.astimezone(UTC).isoformat() if newest else None,
            "digest": source.digest(sum(w["digest"] for w in wms)),
            "state": state,
            "cal": cal,
        }
        rows_read = wm["rows"]
    else:
        by_pollutant, wm = src.hourly(task.start, task.end)
        wm["digest"] = source.digest(wm["digest"])
        wm["state"] = state
        wm["cal"] = cal
        rows_read = wm["rows"]
        for pol, t in sorted(by_pollutant.items()):
            got, n, w = writer.write(
                [t],
                t.schema,
                _partition_dir("hourly", task.start, pol),
                stem,
                {"pollutant": pol, **base},
                old,
            )
            files += got
            rows_written += n
            written += w
    entry = ChunkEntry(task.start, task.end, wm, files)
    return _Done(task, entry, rows_read, rows_written, written)


def _plan(
    manifest: Manifest, dataset: str, start: date, end: date
) -> tuple[list[ChunkEntry], list[tuple[date, date]]]:
    """(published chunks meeting [start, end), new spans for the days none covers)."""
    ds = manifest.dataset(dataset)
    meeting = [c for c in ds.chunks.values() if c.start < end and c.end > start]
    covered = {d for c in meeting for d in source.days(c.start, c.end)}
    spans: list[tuple[date, date]] = []
    for d in source.days(start, end):
        if d in covered:
            continue
        if spans and spans[-1][1] == d and d.day != 1:
            spans[-1] = (spans[-1][0], d + timedelta(days=1))
        else:
            spans.append((d, d + timedelta(days=1)))
    return sorted(meeting, key=lambda c: c.start), spans


_FIRST_DAY = """
SELECT min(x.m) FROM devices d,
  LATERAL (SELECT min(ts) AS m FROM readings r WHERE r.device_id = d.device_id) x
"""


def _first_day(conn: psycopg.Connection[Any]) -> date | None:
    row = conn.execute(_FIRST_DAY).fetchone()
    if row is None or row[0] is None:
        return None
    first: datetime = row[0]
    return first.astimezone(UTC).date()


def _repair(fs: Any, manifest: Manifest) -> None:
    """Finish moves to _history/ that an interrupted run left undone."""
    import pyarrow.fs as pafs

    for ds in manifest.datasets.values():
        for v in ds.versions:
            for p in v["files"]:
                if not p.startswith(HISTORY + "/"):
                    continue
                orig = p[len(HISTORY) + 1 :]
                if fs.get_file_info(p).type == pafs.FileType.NotFound and (
                    fs.get_file_info(orig).type == pafs.FileType.File
                ):
                    fs.create_dir(p.rpartition("/")[0], recursive=True)
                    fs.move(orig, p)


def publish(
    database_url: str,
    target: str,
    settings: PublishSettings,
    start: date | None = None,
    end: date | None = None,
    datasets: tuple[Dataset, ...] = DATASETS,
    csv: bool = False,
    force: bool = False,
    progress: Progress | None = None,
    today: date | None = None,
) -> PublishResult:
    """Publish UTC days ``[start, end]`` (default: the first reading's day .. yesterday).

    ``force`` re-reads every chunk of the range whatever its watermark (files whose content
    did not change are kept). Raises :class:`ConfigError` for bad dates and
    :class:`PublishError` when the archive cannot be written.
    """
    t0 = time.perf_counter()
    today = today or datetime.now(UTC).date()
    for d in datasets:
        if d not in DATASETS:
            raise ConfigError(f"unknown dataset {d!r}; use one or more of: {', '.join(DATASETS)}")
    end = end or today - timedelta(days=1)
    if end > today:
        raise ConfigError(
            f"--to-date {end} is in the future (today is {today} UTC); publish up to today at most"
        )
    if start is not None and start > end:
        raise ConfigError(f"--from {start} is after --to-date {end}; swap them")
    fs = open_target(target)
    manifest = read_manifest(fs)
    _repair(fs, manifest)
    result = PublishResult(target, None, None)
    try:
        conn = psycopg.connect(database_url, autocommit=True)
    except psycopg.Error as exc:
        raise StorageError(
            f"cannot reach the database ({type(exc).__name__}); check LUFTNETT_DATABASE_URL"
        ) from exc
    with conn:
        conn.execute("SET jit = off")
        conn.execute("SET TIME ZONE 'UTC'")  # watermarks digest times as text (source.py)
        if start is None:
            start = _first_day(conn)
            if start is None or start > end:
                result.end = end
                result.seconds = time.perf_counter() - t0
                return result
        state = source.global_state(conn)
        result.start, result.end = start, end
        stop = end + timedelta(days=1)
        tasks: list[_Task] = []
        for name in datasets:
            res = result.datasets.setdefault(name, DatasetResult())
            meeting, spans = _plan(manifest, name, start, stop)
            if meeting and not force:
                lo = min(c.start for c in meeting)
                hi = max(c.end for c in meeting)
                day_wm = source.day_watermarks(conn, name, lo, hi)
                day_cal = source.cal_days(conn, lo, hi)
            for c in meeting:
                if not force:
                    now = source.chunk_watermark(name, day_wm, c.start, c.end, state, day_cal)
                    if now == c.watermark:
                        res.skipped += 1
                        continue
                tasks.append(_Task(name, c.start, c.end, c))
            tasks += [_Task(name, a, b, None) for a, b in spans]
    done = _execute(database_url, fs, settings, tasks, csv, state, progress)
    changed = _merge(manifest, done, result)
    for name in datasets:
        result.datasets[name].version = manifest.dataset(name).version
    result.rows_read = sum(d.rows_read for d in done)
    if changed:
        _write_atomic(fs, MANIFEST, manifest.dumps().encode("utf-8"))
        _move_replaced(fs, done)
        result.changed = True
    if settings.keep_versions is not None:
        dropped = _drop_versions(manifest, settings.keep_versions)
        if dropped:
            # the manifest first: it never lists a file that is gone
            _write_atomic(fs, MANIFEST, manifest.dumps().encode("utf-8"))
            result.changed = True
        result.pruned = _prune_history(fs, manifest)
    from luftnett.publish.catalogue import write_catalogue

    write_catalogue(fs, database_url, manifest, settings, target, force=changed)
    result.seconds = time.perf_counter() - t0
    log.info(
        "archive published",
        extra={"target": target, "rows": result.rows_read, "s": round(result.seconds, 1)},
    )
    return result


def _execute(
    url: str,
    fs: Any,
    settings: PublishSettings,
    tasks: list[_Task],
    csv: bool,
    state: str,
    progress: Progress | None,
) -> list[_Done]:
    if not tasks:
        return []
    meta = {
        "luftnett.licence": LICENCE_URI[settings.licence],
        "luftnett.publisher": settings.publisher_name,
        "luftnett.schema": "docs/publish.md",
    }
    writer = _Writer(fs, csv, meta, settings.compression)
    local = threading.local()
    sources: list[source.Source] = []
    lock = threading.Lock()

    def run(task: _Task) -> _Done:
        src = getattr(local, "src", None)
        if src is None:
            try:
                src = local.src = source.Source(url, settings.timezone)
            except psycopg.Error as exc:
                raise StorageError(
                    f"cannot reach the database ({type(exc).__name__}); check LUFTNETT_DATABASE_URL"
                ) from exc
            with lock:
                sources.append(src)
        try:
            return _run_task(task, src, writer, state)
        except psycopg.Error as exc:
            raise StorageError(
                f"reading {task.dataset} {task.start}..{task.end} from the database failed "
                f"({type(exc).__name__}); the archive is unchanged, run publish again"
            ) from exc
        except _ARROW_ERRORS as exc:
            raise PublishError(
                f"writing {task.dataset} {task.start}..{task.end} failed ({exc}); the archive "
                "is unchanged, run publish again"
            ) from exc

    # raw months first: the longest tasks start early, the short hourly ones fill in
    tasks = sorted(tasks, key=lambda t: (t.dataset != "raw", t.start))
    done: list[_Done] = []
    rows = 0
    workers = min(settings.workers, len(tasks))
    try:
        with concurrent.futures.ThreadPoolExecutor(workers, "publish") as pool:
            futures = [pool.submit(run, t) for t in tasks]
            try:
                for fut in concurrent.futures.as_completed(futures):
                    d = fut.result()
                    done.append(d)
                    rows += d.rows_read
                    log.info(
                        "chunk published",
                        extra={
                            "dataset": d.task.dataset,
                            "start": str(d.task.start),
                            "end": str(d.task.end),
                            "rows": d.rows_read,
                            "files_written": d.files_written,
                        },
                    )
                    if progress is not None:
                        progress(len(done), len(tasks), rows)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    finally:
        for s in sources:
            s.close()
    return done


def _merge(manifest: Manifest, done: list[_Done], result: PublishResult) -> bool:
    """Fold the written chunks into the manifest; True when anything in it changed."""
    changed = False
    by_ds: dict[str, list[_Done]] = {}
    for d in done:
        by_ds.setdefault(d.task.dataset, []).append(d)
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    for name, items in sorted(by_ds.items()):
        ds = manifest.dataset(name)
        res = result.datasets[name]
        added: list[str] = []
        replaced: list[str] = []
        moved: dict[str, str] = {}
        for d in sorted(items, key=lambda x: x.entry.start):
            old = d.task.old
            new_paths = {f.path for f in d.entry.files}
            res.rows_written += d.rows_written
            res.files_written += d.files_written
            if old is None:
                res.added += 1
                if new_paths:
                    added.append(d.entry.key)
            elif {f.path for f in old.files} == new_paths:
                res.unchanged += 1
            else:
                res.replaced += 1
                replaced.append(d.entry.key)
                for f in old.files:
                    if f.path not in new_paths:
                        moved[f.path] = f"{HISTORY}/{f.path}"
            if old is None or old.to_json() != d.entry.to_json():
                changed = True
            ds.chunks[d.entry.key] = d.entry
        if added or replaced:
            for v in ds.versions:
                v["files"] = sorted(moved.get(p, p) for p in v["files"])
            ds.version += 1
            ds.versions.append(
                {
                    "version": ds.version,
                    "published_at": now,
                    "added": added,
                    "replaced": replaced,
                    "files": ds.files(),
                    "rows": ds.rows(),
                }
            )
            changed = True
    return changed


def _move_replaced(fs: Any, done: list[_Done]) -> None:
    for d in done:
        if d.task.old is None:
            continue
        new_paths = {f.path for f in d.entry.files}
        for f in d.task.old.files:
            if f.path not in new_paths:
                dest = f"{HISTORY}/{f.path}"
                fs.create_dir(dest.rpartition("/")[0], recursive=True)
                fs.move(f.path, dest)


def _drop_versions(manifest: Manifest, keep: int) -> int:
    """Forget all but the newest ``keep`` versions of each dataset; the number forgotten."""
    dropped = 0
    for ds in manifest.datasets.values():
        if len(ds.versions) > keep:
            dropped += len(ds.versions) - keep
            ds.versions = ds.versions[-keep:]
    return dropped


def _prune_history(fs: Any, manifest: Manifest) -> int:
    """Delete the files under _history/ that no version in the manifest lists (those of
    forgotten versions, and any a run interrupted after writing the manifest left)."""
    import pyarrow.fs as pafs

    if fs.get_file_info(HISTORY).type != pafs.FileType.Directory:
        return 0
    listed = {p for ds in manifest.datasets.values() for v in ds.versions for p in v["files"]}
    n = 0
    for info in fs.get_file_info(pafs.FileSelector(HISTORY, recursive=True)):
        if info.type == pafs.FileType.File and info.path not in listed:
            fs.delete_file(info.path)
            n += 1
    return n
