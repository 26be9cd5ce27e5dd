"""Error types shared by the whole engine.

Every error a user can cause carries a message written for that user and an exit code
(2 for bad input or usage, 1 for a refused or failed operation), so the CLI and the
server map them without guessing and never show a traceback for a user mistake.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A 1-based position in a source file, printed as ``file:line:col``."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class SignoffError(Exception):
    """Base of every error meant to reach a user as a message, not a traceback."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(SignoffError):
    """The caller gave something malformed (arguments, values, files)."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a flow or policy file, with where it is."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class FlowLoadError(UsageError):
    """A flow (or policy) file that cannot be used; lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ExpressionError(SignoffError):
    """A template or expression that cannot be parsed or evaluated.

    ``position`` is the 0-based offset in the template text where the problem is, when known.
    """

    def __init__(self, message: str, *, expression: str | None = None, position: int | None = None) -> None:
        self.expression = expression
        self.position = position
        self.reason = message
        text = message if expression is None else f"{message} in expression `{expression}`"
        super().__init__(text)


class InvalidInputs(UsageError):
    """Form or flow input values that fail validation; ``errors`` maps input id to message."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("\n".join(self.errors.values()))


class NotFound(SignoffError):
    """An id that names nothing (request, execution, flow)."""


class Refused(SignoffError):
    """The operation is not allowed (policy, state, four-eyes...)."""


class Conflict(SignoffError):
    """The target is in a state that does not allow this now (restart a running execution)."""


class StorageError(SignoffError):
    """The database file cannot be used (corrupt, newer schema, read-only, full disk)."""

    exit_code = 2


class NotWritable(StorageError):
    """This account may not write the data directory or the database (another account's
    files, or a read-only location); the command line adds how to share one (the local server)."""


class Locator:
    """Finds where a node of a loaded YAML document was written.

    ``path`` is the sequence of keys and list indexes from the document root, e.g.
    ``("tasks", 1, "onResume", 0, "type")``. The flow loader subclasses this with real
    positions; this base answers the file's first line so callers always get a location.
    """

    def __init__(self, file: str) -> None:
        self.file = file

    def at(self, path: tuple[str | int, ...]) -> Location:
        return Location(self.file, 1, 1)


def is_known_failure(exc: BaseException) -> bool:
    """A failure whose message says it all: one of ours (database unavailable, disk full, a
    refused write) or a lost PostgreSQL connection. Anything else is a bug worth a traceback."""
    if isinstance(exc, SignoffError):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only installs
        return False
    return isinstance(exc, psycopg.OperationalError)


def log_failure(logger: logging.Logger, level: int, message: str, exc: BaseException) -> None:
    """Log a background failure: a known one (:func:`is_known_failure`) as one line,
    ``message: reason``, so a database restart does not fill the log with tracebacks; anything
    else as ``message`` with its traceback, for whoever reads the log."""
    if is_known_failure(exc):
        logger.log(level, "%s: %s", message, " ".join(str(exc).split()))
    else:
        logger.log(level, message, exc_info=exc)
