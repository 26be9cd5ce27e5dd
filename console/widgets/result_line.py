"""The one-line outcome under a view's table ("started ...", "could not restart ...").

Hidden until there is something to say; red for a refusal, green for a success. The text is
untrusted (flow ids, engine messages), so it is shown as plain ``Text``, never as markup.
"""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class ResultLine(Static):
    DEFAULT_CSS = """
    ResultLine { height: auto; padding: 0 1; display: none; }
    ResultLine.-shown { display: block; }
    ResultLine.-error { color: $error; }
    ResultLine.-ok { color: $success; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)

    def show(self, text: str, *, error: bool = False, ok: bool = False) -> None:
        self.update(Text(text))
        self.set_classes("-shown" + (" -error" if error else "") + (" -ok" if ok else ""))
