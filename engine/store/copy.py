"""`signoff db copy --to postgresql://...`: moving an SQLite database to PostgreSQL.

Every table is copied row for row (PostgreSQL's COPY, in one transaction: the target has all
of it or nothing), the identity counters are moved past the copied ids, and the full-text
column is filled with the same tokens new events get. Afterwards the audit chain is verified
on both sides: the copy must end in the same event with the same hash, so an auditor can keep
checking the head recorded before the move. The target must be empty (a fresh database, or
one only migrated by signoff); nothing is merged into existing data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from signoff.engine.errors import StorageError, UsageError

#: tables that are the store's own machinery, not data
_SKIP = ("audit_fts", "sqlite_", "heartbeats")


@dataclass(frozen=True)
class CopyReport:
    tables: dict[str, int]
    head_seq: int | None
    head_hash: str | None
    verified: bool
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"tables": self.tables, "rows": sum(self.tables.values()), "head_seq": self.head_seq,
                "head_hash": self.head_hash, "verified": self.verified, "problem": self.problem}


def copy_database(source: Any, target: Any) -> CopyReport:
    """Copy the SQLite ``source`` (engine.store.Database) into the empty PostgreSQL ``target``
    (engine.store.pg.PgDatabase); both are open, at the same schema version."""
    from signoff.engine.audit.fulltext_feed import feed
    from signoff.engine.audit.verify import verify_chain

    if getattr(source, "dialect", "") != "sqlite" or getattr(target, "dialect", "") != "postgresql":
        raise UsageError("db copy copies the SQLite file of --data-dir into a PostgreSQL database (--to URL)")
    if source.schema_version() != target.schema_version():
        raise StorageError(f"schema versions differ: {source.schema_version()} here, {target.schema_version()} "
                           f"in {target.path}")
    names = [r[0] for r in source.query("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
             if not r[0].startswith(_SKIP)]
    target_columns: dict[str, list[str]] = {}
    for table, column in target.query("SELECT table_name, column_name FROM information_schema.columns"
                                      " WHERE table_schema = current_schema() ORDER BY ordinal_position"):
        target_columns.setdefault(table, []).append(column)
    busy = [t for t in names if t in target_columns and target.query_one(f'SELECT 1 FROM "{t}" LIMIT 1')]
    if busy:
        raise UsageError(f"{target.path} already holds signoff data (tables {', '.join(busy)}); "
                         "copy only into an empty database")
    counts: dict[str, int] = {}
    session = target.begin()
    try:
        conn = session.sent()
        for table in names:
            if table not in target_columns:
                raise StorageError(f"table {table} has no counterpart in {target.path}")
            columns = [r[1] for r in source.query(f'PRAGMA table_info("{table}")')]
            quoted = ", ".join(f'"{c}"' for c in columns)
            cursor = source.connection().cursor()
            cursor.row_factory = None
            cursor.execute(f'SELECT {quoted} FROM "{table}" ORDER BY rowid')
            count = 0
            with conn.cursor() as pg, pg.copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
                while batch := cursor.fetchmany(2000):
                    for row in batch:
                        copy.write_row(row)
                        count += 1
            counts[table] = count
        # the full-text words of every event, so the first search has no backlog to index
        # (SQLite's index and its mark are not copied: _SKIP)
        feed(session, 0, session.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()[0])
        for table, column in target.query(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND is_identity = 'YES'"):
            if table in counts and counts[table]:
                top = session.execute(f'SELECT max("{column}") FROM "{table}"').fetchone()[0]
                session.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" RESTART WITH {int(top) + 1}')
        session.commit()
    except BaseException:
        session.rollback()
        raise
    here = verify_chain(source)
    there = verify_chain(target)
    problem = None
    if not there.ok:
        problem = f"audit verify fails on the copy: {there.problem}"
    elif (here.head_seq, here.head) != (there.head_seq, there.head):
        problem = f"the copy ends at event {there.head_seq} ({there.head}), the source at {here.head_seq} ({here.head})"
    elif not here.ok:
        problem = f"audit verify fails on the source too (copied as it is): {here.problem}"
    return CopyReport(counts, there.head_seq, there.head, problem is None, problem)
