"""Binary COPY records of reading rows, laid out by numpy instead of one ``write_row`` each.

A binary COPY record is a field count, then per field a 4-byte length (-1: NULL) and the value
in network byte order. Rows whose variable parts have the same shape (byte length of device
id, sensor model and serial, which values are NULL) have the same layout, so each such group is
one numpy structured array filled column by column. Rows with ``extra`` (JSON of varying length)
or a text field numpy cannot hold (a NUL character) are left to the caller, who writes them
with psycopg's ``write_row`` after these records.

The column order and types are the writer's (``luftnett.collector.writer._COPY_COLUMNS``): the
reading row up to ``extra``, then schema_version, flags, qc_checks, qc_version.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from operator import is_not, itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from luftnett.db.schema import READING_COLUMNS, VALUE_COLUMNS

__all__ = ["reading_records"]

_I = {c: READING_COLUMNS.index(c) for c in READING_COLUMNS}
_V0 = _I[VALUE_COLUMNS[0]]
_NV = len(VALUE_COLUMNS)
_N_FIELDS = _I["extra"] + 1 + 4  # the row up to extra, schema_version, flags, qc_checks, qc_version
_PG_TO_UNIX_US = 946_684_800_000_000


def _texts(
    texts: list[str | None],
) -> tuple[npt.NDArray[np.bytes_], npt.NDArray[np.int64]]:
    """UTF-8 bytes of each text (S array) and their lengths: -1 for NULL, -2 for a text that
    holds a NUL (numpy's S drops those). Encoded once per distinct text: a batch has few."""
    uniq = {t: k for k, t in enumerate(dict.fromkeys(texts))}
    enc = [b"" if t is None else t.encode() for t in uniq]
    lengths = np.array(
        [
            -1 if t is None else (-2 if b"\x00" in b else len(b))
            for t, b in zip(uniq, enc, strict=True)
        ],
        dtype=np.int64,
    )
    code = np.fromiter(map(uniq.__getitem__, texts), np.int64, len(texts))
    return np.array(enc)[code], lengths[code]


def reading_records(
    rows: Sequence[tuple[Any, ...]],
    names: Sequence[str],
    dev: npt.NDArray[np.int64],
    seq: npt.NDArray[np.int64],
    ts_us: npt.NDArray[np.int64],
    vals: npt.NDArray[np.float64],
    flags: npt.NDArray[np.int64],
    checks: npt.NDArray[np.int64],
    qc_version: int,
) -> tuple[bytes, npt.NDArray[np.intp]]:
    """Records (no header, no trailer) of the rows numpy can lay out, and the indexes of the
    rows it left (``extra`` set, or a NUL in a text field), in row order.

    ``dev`` indexes ``names``; ``ts_us`` is microseconds since 1970; ``vals`` holds the value
    columns, NaN for NULL (JSON has no NaN, so a NaN is always a missing value)."""
    n = len(rows)
    if not n:
        return b"", np.empty(0, dtype=np.intp)
    dev_bytes = [d.encode() for d in names]
    dev_len = np.array([len(b) for b in dev_bytes], dtype=np.int64)[dev]
    all_model, m_len = _texts(list(map(itemgetter(_I["sensor_model"]), rows)))
    all_serial, s_len = _texts(list(map(itemgetter(_I["sensor_serial"]), rows)))
    has_extra = np.fromiter(map(is_not, map(itemgetter(_I["extra"]), rows), repeat(None)), bool, n)
    left = has_extra | (m_len < 0) | (s_len == -2) | (dev_len == 0)
    left |= (dev_len >= 1024) | (m_len >= 1024) | (s_len >= 1023)  # keeps the keys apart
    null = np.isnan(vals)
    mask = (null * (1 << np.arange(_NV))).sum(axis=1)
    # one key per layout: device id length, model length, serial length (+1: NULL is 0), nulls
    key = ((dev_len * 1024 + m_len) * 1024 + (s_len + 1)) * (1 << _NV) + mask
    key[left] = -1
    window = np.fromiter(map(itemgetter(_I["window_s"]), rows), np.float64, n)
    n_samples = np.fromiter(map(itemgetter(_I["n_samples"]), rows), np.int64, n)
    schema = np.fromiter(map(itemgetter(_I["schema_version"]), rows), np.int64, n)
    ts_pg = ts_us - _PG_TO_UNIX_US
    all_dev = np.array(dev_bytes)[dev]
    chunks: list[bytes] = []
    for k in np.unique(key[key >= 0]).tolist():
        idx = np.flatnonzero(key == k)
        i0 = int(idx[0])
        ld, lm, ls = int(dev_len[i0]), int(m_len[i0]), int(s_len[i0])
        nulls = null[i0]
        fields: list[tuple[str, str]] = [("nf", ">i2"), ("l_dev", ">i4")]
        fields += [("dev", f"S{ld}")] if ld else []
        fields += [("l_seq", ">i4"), ("seq", ">i8"), ("l_ts", ">i4"), ("ts", ">i8")]
        fields += [("l_win", ">i4"), ("win", ">f4"), ("l_ns", ">i4"), ("ns", ">i4")]
        fields += [("l_model", ">i4")] + ([("model", f"S{lm}")] if lm else [])
        fields += [("l_serial", ">i4")] + ([("serial", f"S{ls}")] if ls > 0 else [])
        for j in range(_NV):
            fields += [(f"l_v{j}", ">i4")] + ([] if nulls[j] else [(f"v{j}", ">f4")])
        fields += [("l_extra", ">i4"), ("l_sv", ">i4"), ("sv", ">i2"), ("l_fl", ">i4")]
        fields += [("fl", ">i8"), ("l_ck", ">i4"), ("ck", ">i8"), ("l_qv", ">i4"), ("qv", ">i2")]
        rec = np.empty(idx.size, dtype=np.dtype(fields))
        rec["nf"] = _N_FIELDS
        rec["l_dev"] = ld
        if ld:
            rec["dev"] = all_dev[idx]
        rec["l_seq"], rec["seq"] = 8, seq[idx]
        rec["l_ts"], rec["ts"] = 8, ts_pg[idx]
        rec["l_win"], rec["win"] = 4, window[idx]
        rec["l_ns"], rec["ns"] = 4, n_samples[idx]
        rec["l_model"] = lm
        if lm:
            rec["model"] = all_model[idx]
        rec["l_serial"] = ls
        if ls > 0:
            rec["serial"] = all_serial[idx]
        for j in range(_NV):
            if nulls[j]:
                rec[f"l_v{j}"] = -1
            else:
                rec[f"l_v{j}"], rec[f"v{j}"] = 4, vals[idx, j]
        rec["l_extra"] = -1
        rec["l_sv"], rec["sv"] = 2, schema[idx]
        rec["l_fl"], rec["fl"] = 8, flags[idx]
        rec["l_ck"], rec["ck"] = 8, checks[idx]
        rec["l_qv"], rec["qv"] = 2, qc_version
        chunks.append(rec.tobytes())
    return b"".join(chunks), np.flatnonzero(left)
