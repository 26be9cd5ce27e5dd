"""Stores: the SQLite file (one machine, the default) or PostgreSQL (several replicas)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from signoff.engine.store.db import Database

__all__ = ["Database", "open_database", "check_database_url", "copy_sqlite_to", "redact_url"]


def check_database_url(url: str, where: str = "--database") -> str:
    """The URL, or a :class:`UsageError` saying what to write instead."""
    from signoff.engine.errors import UsageError

    text = url.strip()
    if not text.startswith(("postgresql://", "postgres://")):
        raise UsageError(f"{where}: expected a PostgreSQL URL such as postgresql://user@host/signoff "
                         f"(got {text!r}); leave it out to use the SQLite file in the data directory")
    return text


def open_database(data_dir: Path | str, url: str | None = None) -> Any:
    """The SQLite file in ``data_dir``, or the PostgreSQL database at ``url``."""
    if url:
        from signoff.engine.store.pg import PgDatabase

        return PgDatabase(check_database_url(url), data_dir)
    return Database(data_dir)


def copy_sqlite_to(data_dir: Path | str, url: str) -> Any:
    """`signoff db copy`: the SQLite database in ``data_dir`` into the empty PostgreSQL database
    at ``url`` (engine.store.copy); the report (engine.store.copy.CopyReport)."""
    from signoff.engine.errors import UsageError
    from signoff.engine.store.copy import copy_database
    from signoff.engine.store.db import DB_FILENAME
    from signoff.engine.store.pg import PgDatabase

    url = check_database_url(url, "--to")
    if not (Path(data_dir) / DB_FILENAME).is_file():
        raise UsageError(f"no signoff database in {data_dir} (nothing to copy); give the source with --data-dir")
    source = Database(data_dir)
    try:
        target = PgDatabase(url)
        try:
            return copy_database(source, target)
        finally:
            target.close()
    finally:
        source.close()


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    import re

    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)
