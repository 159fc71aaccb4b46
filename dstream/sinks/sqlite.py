"""An exactly-once key-value sink on SQLite: staged rows, then one transaction that upserts and commits.

Schema (created on first use; `<table>` is the user's table)::

    <table>(key TEXT PRIMARY KEY, value TEXT NOT NULL, batch_ms INTEGER NOT NULL)
    _dstream_commits(output_id TEXT, batch_ms INTEGER, attempt TEXT, records_n INTEGER,
                     PRIMARY KEY (output_id, batch_ms))
    _dstream_staging(output_id TEXT, batch_ms INTEGER, attempt TEXT, partition_index INTEGER,
                     seq INTEGER, key TEXT, value TEXT,
                     PRIMARY KEY (output_id, batch_ms, attempt, partition_index, seq))

Keys and values are stored as JSON text (`json.dumps`, sorted object keys), so 1 and "1" are different
keys. Records are (key, value) pairs; keys are str or int.

Tasks stage a partition's rows into `_dstream_staging` (one transaction per partition, replacing the
rows of a retried task). The driver's commit is ONE SQLite transaction: check `_dstream_commits`,
upsert the attempt's rows into `<table>` in (partition, position) order (a later record of a key wins),
insert the commit row, delete the batch's staging. So the table shows a batch entirely or not at all,
and a re-run batch finds its commit row and changes nothing: the commit log and the data cannot
disagree because they are the same transaction. WAL journal mode lets readers read during staging and
commits; synchronous=FULL makes a returned commit survive a power cut.

The database must be on a local disk reachable from every task (local or local-cluster masters).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from typing import Any

from dstream.errors import DStreamError, DStreamValueError
from dstream.sinks.base import CommitOutcome, StagedPart, Transaction, TransactionalSink
from dstream.sinks.file_sinks import _check_output_id
from wal import crashpoints

BUSY_TIMEOUT_S = 30.0
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_RESERVED_PREFIX = "_dstream"


def check_table(table: object) -> str:
    """Validate a table name (it becomes SQL text, so it is restricted to an identifier)."""
    if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table) or table.startswith(_RESERVED_PREFIX):
        raise DStreamValueError(
            f"table must match [A-Za-z_][A-Za-z0-9_]{{0,63}} and not start with {_RESERVED_PREFIX!r}, "
            f"got {table!r}"
        )
    return table


def encode_pair(record: Any, where: str) -> tuple[str, str]:
    """A (key, value) record as (key JSON, value JSON).

    Raises:
        DStreamValueError: not a pair, a key that is not str/int, or a value that is not JSON.
    """
    if not isinstance(record, (tuple, list)) or len(record) != 2:
        raise DStreamValueError(f"{where}: expected a (key, value) pair, got {record!r}")
    key, value = record
    if not isinstance(key, (str, int)) or isinstance(key, bool):
        raise DStreamValueError(f"{where}: keys must be str or int, got {key!r} in {record!r}")
    try:
        return json.dumps(key), json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DStreamValueError(f"{where}: value {value!r} of key {key!r} is not JSON-serializable") from exc


class SQLiteKeyValueSink(TransactionalSink):
    """Idempotent upserts into a SQLite table, committed once per (output id, batch time).

    Args:
        path: the database file (local path).
        table: the key-value table's name.
        output_id: the stable commit key; defaults to "sqlite-<table>".

    Raises:
        DStreamValueError: bad path, table name or output id.
    """

    def __init__(self, path: str | os.PathLike[str], table: str, *, output_id: str | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path) or "://" in os.fspath(path):
            raise DStreamValueError(f"SQLite sink path must be a local file path, got {path!r}")
        self.path = os.fspath(path)
        self.table = check_table(table)
        self.output_id = _check_output_id(output_id or f"sqlite-{self.table}")

    def __repr__(self) -> str:
        return f"SQLiteKeyValueSink({self.path!r}, {self.table!r}, output_id={self.output_id!r})"

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One connection, one transaction: IMMEDIATE for writers (they queue up instead of failing
        mid-way), deferred for readers (in WAL mode they never wait for a writer)."""
        with closing(sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                self._create_schema(conn)
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            "(key TEXT PRIMARY KEY, value TEXT NOT NULL, batch_ms INTEGER NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _dstream_commits (output_id TEXT, batch_ms INTEGER, attempt TEXT, "
            "records_n INTEGER, PRIMARY KEY (output_id, batch_ms))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _dstream_staging (output_id TEXT, batch_ms INTEGER, attempt TEXT, "
            "partition_index INTEGER, seq INTEGER, key TEXT, value TEXT, "
            "PRIMARY KEY (output_id, batch_ms, attempt, partition_index, seq))"
        )

    # -- the protocol --------------------------------------------------------------------------

    def recover(self) -> None:
        """Delete every staged row of this output: at process start no attempt is in flight."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM _dstream_staging WHERE output_id = ?", (self.output_id,))

    def is_committed(self, batch_ms: int) -> bool:
        with self._transaction(write=False) as conn:
            return self._committed_row(conn, batch_ms) is not None

    def _committed_row(self, conn: sqlite3.Connection, batch_ms: int) -> Any:
        return conn.execute(
            "SELECT attempt FROM _dstream_commits WHERE output_id = ? AND batch_ms = ?",
            (self.output_id, batch_ms),
        ).fetchone()

    def stage(self, txn: Transaction, partition_index: int, records: Iterable[Any]) -> StagedPart:
        where = f"{self!r} batch {txn.batch_ms} partition {partition_index}"
        rows = [
            (txn.output_id, txn.batch_ms, txn.attempt, partition_index, seq, *encode_pair(r, where))
            for seq, r in enumerate(records)
        ]
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM _dstream_staging WHERE output_id = ? AND batch_ms = ? AND attempt = ? "
                "AND partition_index = ?",
                (txn.output_id, txn.batch_ms, txn.attempt, partition_index),
            )
            conn.executemany("INSERT INTO _dstream_staging VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        return StagedPart(partition_index, None, len(rows))

    def commit(self, txn: Transaction, staged: list[StagedPart]) -> CommitOutcome:
        crashpoints.crash_point(crashpoints.SINK_AFTER_STAGE_BEFORE_COMMIT)
        expected_n = sum(p.records_n for p in staged)
        with self._transaction() as conn:
            if self._committed_row(conn, txn.batch_ms) is not None:
                self._delete_staging(conn, txn.batch_ms)
                return "already-committed"
            rows = conn.execute(
                "SELECT key, value FROM _dstream_staging "
                "WHERE output_id = ? AND batch_ms = ? AND attempt = ? ORDER BY partition_index, seq",
                (txn.output_id, txn.batch_ms, txn.attempt),
            ).fetchall()
            if len(rows) != expected_n:
                raise DStreamError(
                    f"{self!r}: batch {txn.batch_ms} attempt {txn.attempt} has {len(rows)} staged rows, "
                    f"tasks reported {expected_n}"
                )
            conn.executemany(
                f"INSERT INTO {self.table} (key, value, batch_ms) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, batch_ms = excluded.batch_ms",
                [(k, v, txn.batch_ms) for k, v in rows],
            )
            conn.execute(
                "INSERT INTO _dstream_commits VALUES (?, ?, ?, ?)",
                (self.output_id, txn.batch_ms, txn.attempt, len(rows)),
            )
            self._delete_staging(conn, txn.batch_ms)
        return "committed"

    def _delete_staging(self, conn: sqlite3.Connection, batch_ms: int) -> None:
        conn.execute(
            "DELETE FROM _dstream_staging WHERE output_id = ? AND batch_ms = ?", (self.output_id, batch_ms)
        )

    def abort(self, txn: Transaction) -> None:
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM _dstream_staging WHERE output_id = ? AND batch_ms = ? AND attempt = ?",
                (txn.output_id, txn.batch_ms, txn.attempt),
            )

    # -- the committed view --------------------------------------------------------------------

    def committed_batches(self) -> list[int]:
        """Batch times committed for this output, ascending."""
        with self._transaction(write=False) as conn:
            found = conn.execute(
                "SELECT batch_ms FROM _dstream_commits WHERE output_id = ? ORDER BY batch_ms",
                (self.output_id,),
            ).fetchall()
        return [int(b) for (b,) in found]

    def read_committed(self) -> dict[Any, Any]:
        """The table as {key: value} (it only ever holds committed batches' records)."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(f"SELECT key, value FROM {self.table}").fetchall()
        return {json.loads(k): json.loads(v) for k, v in rows}

    def staged_rows_n(self) -> int:
        """How many staged rows this output has (0 once every attempt committed or was cleaned)."""
        with self._transaction(write=False) as conn:
            (n,) = conn.execute(
                "SELECT COUNT(*) FROM _dstream_staging WHERE output_id = ?", (self.output_id,)
            ).fetchone()
        return int(n)
