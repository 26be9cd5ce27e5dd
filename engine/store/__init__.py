"""Stores: the SQLite file (one machine, the default) or PostgreSQL (several replicas)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from signoff.engine.store.db import Database

__all__ = ["Database", "open_database", "check_database_url"]


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
