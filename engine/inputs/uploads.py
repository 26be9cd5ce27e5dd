"""FILE input values: a local path (embedded engine) or uploaded content (every remote caller).

Why two forms: the embedded engine runs as the person at the keyboard, so reading the path they
name reads only what they could read anyway. A server reads with *its* privileges, so a path
named by an HTTP or Unix-socket caller would let anyone who may start a flow read the server's
files (``/etc/shadow``, the engine's signing key, another replica's token store). Over the API a
FILE input is therefore only ever the file's bytes, as
``{"name": "report.csv", "content_base64": "..."}``; a path is refused with a message per field.
The signoff CLI and console in remote mode read the local file and send it in that form
(:func:`upload_from_path`), so ``-i report=./q3.csv`` works the same against any engine.

A flow's own ``defaults`` for a FILE input stay paths on the engine's host: the flow author
already runs commands there (Shell tasks), so that grants nothing new.
"""
from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

#: largest FILE input accepted, in bytes (10 MiB): files live in the database (``input_files``)
#: and travel base64-encoded in one JSON body; forms, CSVs and change lists fit with room to spare
MAX_FILE_BYTES = 10 * 1024 * 1024
#: the keys of an uploaded FILE value
UPLOAD_KEYS = frozenset({"name", "content_base64"})
_MAX_NAME_BYTES = 255
_MAX_ENCODED = 4 * ((MAX_FILE_BYTES + 2) // 3)
_TOO_LARGE = f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"


class FileValueError(Exception):
    """Why a FILE value is refused; ``shown`` is what the message may echo of it."""

    def __init__(self, reason: str, shown: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.shown = shown


@dataclass(frozen=True)
class FileContent:
    """A FILE input's name (a safe base name) and bytes, ready to store."""

    name: str
    content: bytes


def is_upload(value: Any) -> bool:
    """Does ``value`` have the shape of an uploaded FILE value (a JSON object)?"""
    return isinstance(value, Mapping)


def decode_upload(value: Mapping[str, Any]) -> FileContent:
    """Check an uploaded FILE value and decode it; :class:`FileValueError` says what is wrong."""
    keys = set(value)
    if keys != UPLOAD_KEYS:
        missing = sorted(UPLOAD_KEYS - keys)
        extra = sorted(str(k) for k in keys - UPLOAD_KEYS)
        what = "; ".join(part for part in (
            f"missing {', '.join(missing)}" if missing else "",
            f"unknown {', '.join(extra)}" if extra else "") if part)
        raise FileValueError(f"an uploaded file must be an object with exactly `name` and `content_base64` "
                             f"({what})", shown=_shown_name(value.get("name")))
    name = check_name(value["name"])
    encoded = value["content_base64"]
    if not isinstance(encoded, str):
        raise FileValueError("`content_base64` must be text (the file's bytes in base64)", shown=name)
    if len(encoded) > _MAX_ENCODED:
        raise FileValueError(_TOO_LARGE, shown=name)
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise FileValueError("`content_base64` is not valid base64", shown=name) from None
    if len(content) > MAX_FILE_BYTES:
        raise FileValueError(_TOO_LARGE, shown=name)
    return FileContent(name, content)


def check_name(name: Any) -> str:
    """A file name that is safe as one path component on the server: no folders, no control
    characters, not ``.``/``..``, at most 255 bytes. Refused rather than rewritten, so the name
    the flow sees is the name the uploader gave."""
    if not isinstance(name, str) or not name.strip():
        raise FileValueError("`name` must be the file's name (text, not empty)", shown=_shown_name(name))
    if "/" in name or "\\" in name:
        raise FileValueError("`name` must be a file name, without folders (no / or \\)", shown=_shown_name(name))
    if name in (".", "..") or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise FileValueError("`name` must be a plain file name (no control characters, not . or ..)",
                             shown=_shown_name(name))
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        raise FileValueError(f"`name` is longer than {_MAX_NAME_BYTES} bytes", shown=_shown_name(name))
    return name


def read_local(value: str, *, content: bool = True) -> FileContent:
    """Read the file a local path (or ``file://`` URI) names, as the calling process.
    ``content`` False: only check that it could be read (opened, not read), with no bytes."""
    path = value.strip()
    if not path:
        raise FileValueError("it must be the path of a file")
    if path.lower().startswith("file://"):
        path = unquote(urlsplit(path).path)
    path = os.path.expanduser(path)
    try:
        if not os.path.exists(path):
            raise FileValueError("it must be the path of an existing file")
        if os.path.isdir(path):
            raise FileValueError("it must be a file, not a directory")
        if not os.path.isfile(path):
            raise FileValueError("it must be a regular file")
        if os.path.getsize(path) > MAX_FILE_BYTES:
            raise FileValueError(_TOO_LARGE)
        if content:
            data = Path(path).read_bytes()
        else:
            with open(path, "rb"):
                data = b""
    except PermissionError:
        raise FileValueError("the file is not readable") from None
    except (ValueError, OSError):
        raise FileValueError("it must be the path of an existing file") from None
    if len(data) > MAX_FILE_BYTES:  # grew since the size was read
        raise FileValueError(_TOO_LARGE)
    return FileContent(check_name(Path(path).name), data)


def upload_from_path(value: str, *, content: bool = True) -> dict[str, str]:
    """What a remote client sends for a FILE input given as a local path (``content`` False:
    the name only, for a check of the form, which never stores the file)."""
    found = read_local(value, content=content)
    return {"name": found.name, "content_base64": base64.b64encode(found.content).decode("ascii")}


def paths_to_uploads(file_ids: set[str], inputs: Mapping[str, Any], *,
                     content: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    """A remote client's start inputs with every FILE input given as a local path (a dotted
    key or a nested map, as :func:`validate_inputs` reads them) replaced by its uploaded
    content. Returns ``(inputs, errors)``: a path that cannot be read is an error for its
    field, in the engine's own words, and the input is left out. ``content`` False (the
    console's live check of a start form, after every change): the file is checked here and
    sent without its bytes - the server's check looks at the upload's shape, never stores it."""
    errors: dict[str, str] = {}

    def walk(mapping: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in mapping.items():
            full = f"{prefix}{key}"
            if full in file_ids and isinstance(value, str) and value.strip():
                try:
                    out[key] = upload_from_path(value, content=content)
                except FileValueError as bad:
                    from signoff.engine.inputs.validate import show_value  # it imports this module

                    errors[full] = f"Invalid input for `{full}`, {bad.reason}, but received `{show_value(value)}`"
            elif isinstance(value, Mapping) and any(i.startswith(full + ".") for i in file_ids):
                out[key] = walk(value, full + ".")
            else:
                out[key] = value
        return out

    return walk(inputs, ""), errors


def _shown_name(name: Any) -> str:
    return name[:80] if isinstance(name, str) else type(name).__name__


__all__ = ["MAX_FILE_BYTES", "UPLOAD_KEYS", "FileContent", "FileValueError", "check_name", "decode_upload",
           "is_upload", "paths_to_uploads", "read_local", "upload_from_path"]
