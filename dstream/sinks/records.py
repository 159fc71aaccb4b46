"""Record encodings of the file sinks: JSON lines and Parquet, with errors that name the bad record.

JSON lines: one `json.dumps(record, sort_keys=True, allow_nan=False)` per line, UTF-8, each line
ending in "\\n"; sorted keys make a re-run batch produce identical bytes. Parquet: the partition's
records must be dicts (rows); pyarrow infers the schema from them. Both encodings are deterministic
functions of the records, which is what lets a re-run batch find identical staged bytes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

from dstream.errors import DStreamValueError

FORMATS = ("jsonl", "parquet")
SUFFIXES = {"jsonl": ".jsonl", "parquet": ".parquet"}


def check_format(fmt: object) -> str:
    """Validate a file sink format name.

    Raises:
        DStreamValueError: `fmt` is not one of FORMATS.
    """
    if fmt not in FORMATS:
        raise DStreamValueError(f"unknown sink format {fmt!r}; expected one of {list(FORMATS)}")
    return str(fmt)


def _json_line(record: Any, where: str) -> str:
    try:
        return json.dumps(record, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DStreamValueError(f"{where}: record {record!r} is not JSON-serializable ({exc})") from exc


def encode(fmt: str, records: Iterable[Any], where: str) -> tuple[bytes, int]:
    """Encode records as one file's bytes; returns (bytes, number of records).

    Args:
        fmt: "jsonl" or "parquet".
        records: the partition's records.
        where: names the batch and partition in error messages.

    Raises:
        DStreamValueError: a record cannot be encoded in `fmt` (the message shows it).
    """
    if fmt == "jsonl":
        lines = [_json_line(r, where) for r in records]
        return "".join(f"{line}\n" for line in lines).encode(), len(lines)
    rows = list(records)
    for row in rows:
        if not isinstance(row, dict):
            raise DStreamValueError(f"{where}: parquet records must be dicts (rows), got {row!r}")
    if not rows:
        return b"", 0
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise DStreamValueError(
            f"{where}: rows starting {rows[0]!r} do not fit one Arrow table ({exc})"
        ) from exc
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue(), len(rows)


def decode(fmt: str, data: bytes) -> list[Any]:
    """The records of one file written by `encode`."""
    if fmt == "jsonl":
        return [json.loads(line) for line in data.decode().splitlines()]
    if not data:
        return []
    import pyarrow.parquet as pq

    rows: list[Any] = pq.read_table(io.BytesIO(data)).to_pylist()
    return rows
