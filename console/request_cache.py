"""The pending view's cache of full requests (context, form, rules), newest use last.

The context pane shows a request the moment the cursor lands on it if it is here; decisions
read the forms and comment rules of their targets from here too. A change to a request (a
poll, a decision) drops its entry, so what is shown is never older than the last poll.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

#: most requests kept
CACHE_SIZE = 512


class RequestCache:
    """A least-recently-used map of request id -> the backend's ``get_request`` answer."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, request_id: str) -> dict[str, Any] | None:
        return self._items.get(request_id)

    def __getitem__(self, request_id: str) -> dict[str, Any]:
        return self._items[request_id]

    def remember(self, request: dict[str, Any]) -> None:
        self._items[request["id"]] = request
        self._items.move_to_end(request["id"])
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def forget(self, request_id: str) -> None:
        self._items.pop(request_id, None)

    def clear(self) -> None:
        self._items.clear()
