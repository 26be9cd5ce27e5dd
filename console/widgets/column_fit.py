"""Fitting a DataTable's last column to the room the fixed columns leave (History, Flows)."""
from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey


def fit_last_column(table: DataTable, fixed: Sequence[tuple[str, int]], key: str, minimum: int,
                    available: int) -> None:
    """Give column ``key`` the ``available`` cells the ``fixed`` (label, width) columns leave,
    at least ``minimum``. DataTable has no public way to re-measure after a column's width
    changes; the two private calls are kept here, in one place to check on Textual upgrades."""
    taken = sum(w for _, w in fixed) + 2 * table.cell_padding * (len(fixed) + 1) + 1
    width = max(minimum, available - taken)
    column = table.columns.get(ColumnKey(key))
    if column is not None and column.width != width:
        column.width = width
        column.auto_width = False
        table._clear_caches()  # DataTable caches row renders and its virtual size
        table._require_update_dimensions = True
        table.refresh(layout=True)
