"""Turning the engine's SQL (SQLite's placeholder style) into psycopg's.

The engine writes ``?`` and ``:name`` placeholders (sqlite3's styles). psycopg wants ``%s`` and
``%(name)s``, and a literal ``%`` doubled. Text inside quotes ('...' and "...") is left alone.
Results are cached: the engine issues a few hundred distinct statements, over and over.
"""
from __future__ import annotations

import re
from functools import lru_cache

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@lru_cache(maxsize=4096)
def to_psycopg(sql: str) -> str:
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # '' or "" inside: one literal quote
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i:end + 1].replace("%", "%%"))
            i = end + 1
            continue
        if ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        elif ch == ":" and (i == 0 or sql[i - 1] != ":") and i + 1 < n and sql[i + 1] != ":":
            m = _NAME.match(sql, i + 1)
            if m:
                out.append(f"%({m.group(0)})s")
                i = m.end()
                continue
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def statement_kind(sql: str) -> str:
    """The transaction-control word a statement starts with (upper case), or "" for others."""
    head = sql.lstrip()[:12].upper()
    for word in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END"):
        if head.startswith(word):
            return word
    return ""
