"""`signoff open LINK`: which request a link leads to, through the backend (local or remote).

A link names a request or an execution (engine.links says why appLink() names the execution):
an execution resolves to its oldest PENDING request, else its latest request.
"""
from __future__ import annotations

from typing import Any

from signoff.console.backend import Backend
from signoff.engine.errors import NotFound
from signoff.engine.links import parse_link


def resolve_request(backend: Backend, link: str) -> dict[str, Any]:
    """The request (as ``get_request`` returns it) that ``link`` leads to; NotFound when none."""
    target = parse_link(link)
    try:
        return backend.get_request(target)
    except NotFound:
        pass
    try:
        execution = backend.get_execution(target)
    except NotFound:
        raise NotFound(f"`{link}` leads to no request or execution known here "
                       f"({backend.location})") from None
    requests = execution.get("requests") or []
    if not requests:
        raise NotFound(f"execution {target} has not asked for a decision (yet): nothing to open")
    pending = [r for r in requests if r.get("state") == "PENDING"]
    chosen = pending[0] if pending else requests[-1]
    return backend.get_request(chosen["id"])
