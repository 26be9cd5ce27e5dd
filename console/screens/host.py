"""The console app as its views see it: typed, for the type checker.

Views and dialogs are mounted in `SignoffApp` only, so ``signoff_app(self)`` is ``self.app``
with its real type (its backend, its status bar, its live model) instead of ``App[Any]``.
A cast, not a check: nothing changes at run time, and nothing is imported from the app then.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from textual.app import App

    from signoff.console.app import SignoffApp


class InApp(Protocol):
    """A widget, screen or command provider: anything that knows its app."""

    @property
    def app(self) -> App[Any]: ...


def signoff_app(node: InApp) -> SignoffApp:
    """``node.app`` as the SignoffApp it is."""
    return cast("SignoffApp", node.app)
