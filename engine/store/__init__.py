"""The single SQLite file behind everything: schema, migrations, connections, transactions."""
from signoff.engine.store.db import Database

__all__ = ["Database"]
