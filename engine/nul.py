"""NUL (U+0000) in text from outside is refused, the same way on SQLite and PostgreSQL.

PostgreSQL text cannot hold NUL; SQLite can. Without one rule a value with NUL is stored by
one store and refused by the other, or stored as JSON (where it is an escape) and then fails
later on PostgreSQL when the runner renders it into a text column. The rule (ARCHITECTURE.md,
"Text the stores keep"): text a person or a client gives signoff - flow inputs, form values,
reasons, idempotency keys, key-value entries, flow YAML, webhook requests, search queries,
token names, URLs - must not contain NUL. It is refused before anything is written, with a
message naming the field, never rewritten: the audit records exactly what was said. Output of
programs is not anyone's statement: a shell task's NUL byte becomes U+FFFD in its log
(engine.tasks.shell).

Every entry point calls the functions here: the HTTP request models and the URL check
(engine.server), the service (the embedded engine and the server alike), the flow loader,
the webhook trigger and token issuing.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signoff.engine.errors import InvalidInputs

NUL = "\x00"
MESSAGE = "must not contain the NUL character (U+0000)"


def nul_problem(value: Any, path: str) -> str | None:
    """Why ``value`` cannot be kept (``PATH: must not contain ...``), or None when no text in it
    holds NUL. Walks strings, mapping keys and values, lists and tuples (without recursion, so a
    deeply nested value cannot exhaust the stack); the first NUL found is named by its dotted
    path (``inputs.doc.a.0``), a mapping key by the mapping's path."""
    if isinstance(value, str):  # performance: the common case, no walk
        return f"{path}: {MESSAGE}" if NUL in value else None
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return f"{where}: {MESSAGE}"
            continue
        if isinstance(item, Mapping):
            pairs: Any = item.items()
        elif isinstance(item, (list, tuple)):
            pairs = enumerate(item)
        else:
            continue
        nested: list[tuple[Any, str]] = []
        for key, sub in pairs:
            if isinstance(key, str) and NUL in key:
                return f"{where}: a key {MESSAGE}"
            if isinstance(sub, str):
                if NUL in sub:
                    return f"{where}.{key}: {MESSAGE}"
            elif isinstance(sub, (Mapping, list, tuple)):
                nested.append((sub, f"{where}.{key}"))
        stack.extend(reversed(nested))
    return None


def nul_errors(fields: Mapping[str, Any]) -> dict[str, str]:
    """field -> message for every field whose value holds NUL (empty when none does)."""
    errors: dict[str, str] = {}
    for name, value in fields.items():
        problem = nul_problem(value, name)
        if problem:
            errors[name] = problem
    return errors


def input_errors(values: Mapping[str, Any] | None, container: str = "inputs") -> dict[str, str]:
    """Input id -> message for input values holding NUL; an id holding NUL is reported under
    ``container`` (the id itself cannot be the key of a message meant to name it)."""
    named = {str(name): value for name, value in (values or {}).items()}
    errors = nul_errors({name: value for name, value in named.items() if NUL not in name})
    if any(NUL in name for name in named):
        errors[container] = f"{container}: an input name {MESSAGE}"
    return errors


def refuse_nul(**fields: Any) -> None:
    """Raise InvalidInputs naming every field (keyword name) whose value holds NUL."""
    errors = nul_errors(fields)
    if errors:
        raise InvalidInputs(errors)
