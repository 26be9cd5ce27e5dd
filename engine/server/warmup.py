"""Modules a server's requests import on first use, imported at startup instead.

The engine imports some modules where they are used, so the console and one-shot CLI commands
start without them (OpenSSL's serialization modules alone take ~0.5 s). A server would pay
that inside the first request that needs them: the first bulk decision through a fresh replica
answered ~0.5 s later, importing the engine key's modules for its audit checkpoint.
"""
from __future__ import annotations

import importlib

#: imported lazily by the decision, start, signing and checkpoint paths
MODULES = (
    "cryptography.hazmat.primitives.serialization",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "signoff.engine.approvals.chunks",
    "signoff.engine.approvals.decide",
    "signoff.engine.audit.fulltext",
    "signoff.engine.signing.check",
    "signoff.engine.signing.checkpoints",
    "signoff.engine.store.behind",
)


def preload() -> None:
    for name in MODULES:
        importlib.import_module(name)
