"""Links to an approval request, as put in notifications and rendered by ``appLink()``.

A link is ``<public URL>/r/<id>`` when a public URL is configured (``signoff serve
--public-url URL`` or ``public_url`` in config.toml), else ``signoff://request/<id>``;
``signoff open LINK`` accepts either form or a bare id.

The id in a link is a request id, or an execution id. Decision: ``appLink()`` is rendered by
a task that runs *before* the Pause creating the request (the seed's ``vacation_approval``
notifies first, then pauses), and the next request's id cannot be known then (a flow may
branch, run in parallel or pause several times). So ``appLink()`` links to the execution,
and whoever opens the link (``signoff open``, the server's ``/r/<id>``) resolves an
execution id to that execution's oldest PENDING request, or to its latest request once none
is pending. Notifications signoff sends itself name the request directly.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from signoff.engine.errors import UsageError

SCHEME_PREFIX = "signoff://request/"
#: request ids (r + 12) and execution ids (22): the id alphabet, lower case, plus digits
_ID = re.compile(r"[0-9a-z]{6,64}")


def check_public_url(url: str) -> str:
    """The public URL without a trailing slash; UsageError when it is not an http(s) URL."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise UsageError(f"public URL `{url}` must be an http:// or https:// URL without ?query or #fragment, "
                         "e.g. https://signoff.example.com")
    return text.rstrip("/")


def request_link(public_url: str | None, target_id: str) -> str:
    """The link to a request (or to an execution's request, see the module docstring)."""
    if public_url:
        return f"{public_url.rstrip('/')}/r/{target_id}"
    return f"{SCHEME_PREFIX}{target_id}"


def parse_link(text: str) -> str:
    """The id a link names: ``signoff://request/ID``, ``http(s)://host[/prefix]/r/ID`` or a bare ID."""
    value = text.strip()
    candidate: str | None = None
    if value.startswith(SCHEME_PREFIX):
        candidate = value[len(SCHEME_PREFIX):].rstrip("/")
    elif value.startswith(("http://", "https://")):
        path = urlsplit(value).path.rstrip("/")
        head, sep, tail = path.rpartition("/r/")
        if sep and "/" not in tail:
            candidate = tail
    elif "/" not in value and ":" not in value:
        candidate = value
    if candidate is None or not _ID.fullmatch(candidate.lower()):
        raise UsageError(f"`{text}` is not a signoff link: expected signoff://request/ID, "
                         "https://HOST/r/ID or a request id")
    return candidate.lower()
