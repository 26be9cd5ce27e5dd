"""FILE inputs: stored in the database, so every replica can read them.

Decision (README "High availability"): the file's bytes go into the table ``input_files``,
keyed by their SHA-256, in the same database as the execution, rather than into a shared
directory. One thing to back up and to keep consistent (a file is there exactly when the
database says an execution refers to it), no network file system to mount on every replica,
and ``signoff db copy`` takes the files along. Uploaded inputs are small (forms, CSVs, change
lists); the database holds them without trouble.

Tasks read a FILE input as a local path (``{{ inputs.report }}`` in a shell command), so each
replica keeps a cache copy at ``<data dir>/files/<sha256>/<name>``, and the input's value is
that ``file://`` URI. A replica that advances an execution started elsewhere writes the copy
from the database before the first task runs (:func:`ensure_local`); when the URI names
another data directory (replicas with different ``--data-dir`` paths), the tasks on this
replica are given the URI of its own copy instead.
"""
from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from signoff.engine.clock import format_time
from signoff.engine.errors import InvalidInputs
from signoff.engine.inputs.uploads import FileContent

FILES_DIR = "files"
_CACHED = re.compile(r"/files/([0-9a-f]{64})/([^/]+)$")


def store_file(db: Any, data_dir: Path, file: FileContent, now: Any) -> str:
    """Put a FILE input's bytes into the database and this replica's cache; its URI. The
    name was checked (engine.inputs.uploads.check_name): one path component, no folders."""
    content = file.content
    digest = hashlib.sha256(content).hexdigest()
    with db.write() as tx:
        tx.execute("INSERT INTO input_files(sha256, size, content, created_at) VALUES (?,?,?,?)"
                   " ON CONFLICT (sha256) DO NOTHING", (digest, len(content), content, format_time(now)))
    target = Path(data_dir) / FILES_DIR / digest / file.name
    _write_once(target, content)
    return target.resolve().as_uri()


class DeferredFiles:
    """FILE inputs held back while a start's other inputs are checked: ``take`` stands in for
    storing and returns a placeholder; ``store_all`` stores them, once every value is valid,
    and puts their URIs in place. A refused start so leaves no file behind."""

    def __init__(self) -> None:
        self._held: dict[str, FileContent] = {}

    def take(self, file: FileContent) -> str:
        placeholder = f"signoff-file-pending:{uuid.uuid4().hex}"
        self._held[placeholder] = file
        return placeholder

    def store_all(self, values: dict[str, Any], store: Callable[[FileContent], str]) -> dict[str, Any]:
        """``values`` with each placeholder replaced by the stored file's URI; a storage
        failure is :class:`InvalidInputs` for the input that held the file."""
        def walk(node: Any, path: str) -> Any:
            if isinstance(node, dict):
                return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
            if isinstance(node, str) and node in self._held:
                try:
                    return store(self._held[node])
                except OSError as exc:
                    why = exc.strerror or str(exc)
                except Exception as exc:  # noqa: BLE001 - a storage failure is reported per field
                    why = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                raise InvalidInputs({path: f"Invalid input for `{path}`, the file could not be stored ({why}), "
                                           f"but received `{self._held[node].name}`"})
            return node

        return walk(values, "") if self._held else values


def ensure_local(db: Any, data_dir: Path, uris: Iterable[Any]) -> dict[str, str]:
    """Write this replica's cache copy of each stored FILE input that it does not have yet
    (an execution started through another replica), from the database. Returns the URIs that
    name another data directory (a replica on the same host, or another path) mapped to this
    replica's copy: the runner gives tasks those (the stored inputs are not changed)."""
    root = (Path(data_dir) / FILES_DIR).resolve()
    moved: dict[str, str] = {}
    for uri in uris:
        if not isinstance(uri, str) or not uri.startswith("file://"):
            continue
        path = Path(unquote(urlsplit(uri).path))
        found = _CACHED.search(path.as_posix())
        if found is None:
            continue
        target = root / found.group(1) / found.group(2)
        if not target.exists():
            row = db.query_one("SELECT content FROM input_files WHERE sha256=?", (found.group(1),))
            if row is None:
                continue  # not stored by signoff (an older file input): left as it is
            _write_once(target, bytes(row[0]))
        if target != path:
            moved[uri] = target.as_uri()
    return moved


def _write_once(target: Path, content: bytes) -> None:
    """Write ``content`` at ``target`` unless it is there: a whole file or none (rename)."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.part")
    temporary.write_bytes(content)
    os.replace(temporary, target)
