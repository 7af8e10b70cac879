"""Binary COPY records of reading rows, laid out by numpy instead of one ``write_row`` each.

A binary COPY record is a field count, then per field a 4-byte length (-1: NULL) and the value
in network byte order. Readings whose variable parts have the same shape (byte length of device
id, sensor model and serial, which values are NULL) have the same layout, so each such group is
one numpy structured array filled column by column. ``extra`` (jsonb: a version byte and JSON
text) is part of the layout too: its length is one more part of the key (the edge agent sends
window statistics in every reading: written row by row, such a batch cost ~6 times the client
time of one without). Readings with a text field numpy cannot hold (a NUL character) or an
``extra`` of 64 kB or more are left to the caller, who writes them with psycopg's ``write_row``
after these records.

The column order and types are the writer's (``luftnett.collector.writer._COPY_COLUMNS``): the
reading row up to ``extra``, then schema_version, flags, qc_checks, qc_version.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from luftnett.collector.columns import BatchColumns
from luftnett.db.schema import READING_COLUMNS, VALUE_COLUMNS

__all__ = ["reading_records"]

_I = {c: READING_COLUMNS.index(c) for c in READING_COLUMNS}
_V0 = _I[VALUE_COLUMNS[0]]
_NV = len(VALUE_COLUMNS)
_N_FIELDS = _I["extra"] + 1 + 4  # the row up to extra, schema_version, flags, qc_checks, qc_version
_PG_TO_UNIX_US = 946_684_800_000_000


def _texts(texts: Sequence[str | None]) -> tuple[npt.NDArray[np.bytes_], npt.NDArray[np.int64]]:
    """UTF-8 bytes of each text (S array) and their byte lengths: -1 for NULL, -2 for a text
    that holds a NUL (numpy's S drops those). ASCII texts (device sensors, the decoder's
    ``extra``) are encoded by numpy in one call."""
    plain = ["" if t is None else t for t in texts]
    n = len(plain)
    try:
        enc = np.array(plain, dtype="S")
        lengths = np.fromiter(map(len, plain), np.int64, n)
    except UnicodeEncodeError:
        raw = [t.encode() for t in plain]
        enc, lengths = np.array(raw), np.fromiter(map(len, raw), np.int64, n)
    if "\x00" in "".join(plain):
        lengths[np.fromiter(("\x00" in t for t in plain), bool, n)] = -2
    lengths[np.fromiter((t is None for t in texts), bool, n)] = -1
    return enc, lengths


def reading_records(
    b: BatchColumns,
    flags: npt.NDArray[np.int64],
    checks: npt.NDArray[np.int64],
    qc_version: int,
) -> tuple[bytes, npt.NDArray[np.intp]]:
    """Records (no header, no trailer) of the readings numpy can lay out, and the indexes of
    the readings it left (a NUL in a text field, an ``extra`` of 64 kB or more), in batch
    order.

    NaN in ``b.vals`` is NULL (JSON has no NaN, so a NaN is always a missing value)."""
    n = len(b)
    if not n:
        return b"", np.empty(0, dtype=np.intp)
    dev_bytes = [d.encode() for d in b.names]
    dev_len = np.array([len(x) for x in dev_bytes], dtype=np.int64)[b.dev]
    text_bytes, text_len = _texts(b.texts)
    m_len, s_len = text_len[b.model], text_len[b.serial]
    left = (m_len < 0) | (s_len == -2) | (dev_len == 0)
    if b.extra is None:
        x_text, x_len = np.zeros(n, dtype="S1"), np.full(n, -1, dtype=np.int64)
    else:
        x_text, x_len = _texts(b.extra)
    left |= (dev_len >= 1024) | (m_len >= 1024) | (s_len >= 1023)  # keeps the keys apart
    left |= (x_len == -2) | (x_len >= 65535)
    vals = b.vals
    null = np.isnan(vals)
    mask = null @ (1 << np.arange(_NV))
    # one key per layout: device id length, model length, serial length (+1: NULL is 0), nulls
    key = ((dev_len * 1024 + m_len) * 1024 + (s_len + 1)) * (1 << _NV) + mask
    key = key * 65536 + (x_len + 1)  # extra: its text's length (+1: NULL is 0)
    key[left] = -1
    window, n_samples, schema, seq = b.window_s, b.n_samples, b.schema, b.seq
    ts_pg = b.ts_us - _PG_TO_UNIX_US
    all_dev = np.array(dev_bytes)[b.dev]
    all_model, all_serial = text_bytes[b.model], text_bytes[b.serial]
    chunks: list[bytes] = []
    for k in np.unique(key[key >= 0]).tolist():
        idx = np.flatnonzero(key == k)
        i0 = int(idx[0])
        ld, lm, ls, lx = int(dev_len[i0]), int(m_len[i0]), int(s_len[i0]), int(x_len[i0])
        nulls = null[i0]
        fields: list[tuple[str, str]] = [("nf", ">i2"), ("l_dev", ">i4")]
        fields += [("dev", f"S{ld}")] if ld else []
        fields += [("l_seq", ">i4"), ("seq", ">i8"), ("l_ts", ">i4"), ("ts", ">i8")]
        fields += [("l_win", ">i4"), ("win", ">f4"), ("l_ns", ">i4"), ("ns", ">i4")]
        fields += [("l_model", ">i4")] + ([("model", f"S{lm}")] if lm else [])
        fields += [("l_serial", ">i4")] + ([("serial", f"S{ls}")] if ls > 0 else [])
        for j in range(_NV):
            fields += [(f"l_v{j}", ">i4")] + ([] if nulls[j] else [(f"v{j}", ">f4")])
        fields += [("l_extra", ">i4")]
        fields += (
            [("x_version", "i1")] + ([("extra", f"S{lx}")] if lx > 0 else []) if lx >= 0 else []
        )
        fields += [("l_sv", ">i4"), ("sv", ">i2"), ("l_fl", ">i4")]
        fields += [("fl", ">i8"), ("l_ck", ">i4"), ("ck", ">i8"), ("l_qv", ">i4"), ("qv", ">i2")]
        dt = np.dtype(fields)
        # the fixed parts (field count, lengths, ...) of every record at once, from a template
        tmpl = np.zeros((), dtype=dt)
        tmpl["nf"] = _N_FIELDS
        tmpl["l_dev"], tmpl["l_seq"], tmpl["l_ts"], tmpl["l_win"], tmpl["l_ns"] = ld, 8, 8, 4, 4
        tmpl["l_model"], tmpl["l_serial"] = lm, ls
        for j in range(_NV):
            tmpl[f"l_v{j}"] = -1 if nulls[j] else 4
        tmpl["l_extra"], tmpl["l_sv"], tmpl["l_fl"], tmpl["l_ck"] = -1, 2, 8, 8
        if lx >= 0:  # jsonb: version 1, then the text
            tmpl["l_extra"], tmpl["x_version"] = lx + 1, 1
        tmpl["l_qv"], tmpl["qv"] = 2, qc_version
        rec = np.tile(tmpl.reshape(1), idx.size)  # ~20 times faster than np.full with a record
        sel = slice(None) if idx.size == n else idx  # one layout (the usual batch): no copies
        if ld:
            rec["dev"] = all_dev[sel]
        rec["seq"] = seq[sel]
        rec["ts"] = ts_pg[sel]
        rec["win"] = window[sel]
        rec["ns"] = n_samples[sel]
        if lm:
            rec["model"] = all_model[sel]
        if ls > 0:
            rec["serial"] = all_serial[sel]
        for j in range(_NV):
            if not nulls[j]:
                rec[f"v{j}"] = vals[sel, j]
        rec["sv"] = schema[sel]
        rec["fl"] = flags[sel]
        rec["ck"] = checks[sel]
        if lx > 0:
            rec["extra"] = x_text[sel]
        chunks.append(rec.tobytes())
    return chunks[0] if len(chunks) == 1 else b"".join(chunks), np.flatnonzero(left)
