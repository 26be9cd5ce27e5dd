"""`audit verify` beyond the hash chain: decision signatures and the engine's checkpoints."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from signoff.engine.store.db import connection_of


def with_signatures(result: dict[str, Any], db: Any, data_dir: Path) -> dict[str, Any]:
    """The chain's verification ``result`` plus signatures (``signed``, ``unsigned``) and
    checkpoints (``checkpoints``, ``last_checkpoint``); the first problem found (chain, then
    signatures, then checkpoints) is ``problem`` / ``first_bad_seq``, every signature problem
    is in ``signature_problems``."""
    from signoff.engine.signing.audit_check import verify_signatures
    from signoff.engine.signing.checkpoints import verify_checkpoints

    conn = connection_of(db)
    report = verify_signatures(conn)
    problem, bad_seq, verified, newest = verify_checkpoints(conn, Path(data_dir), result.get("head_seq"))
    out = {**result, "signed": report.signed, "unsigned": report.unsigned,
           "signature_problems": report.problems, "checkpoints": verified,
           "last_checkpoint": {"seq": newest["seq"], "hash": newest["hash"], "at": newest["at"]} if newest else None}
    if not out["ok"]:
        return out
    if report.problem is not None:
        return {**out, "ok": False, "problem": report.problem, "first_bad_seq": report.first_bad_seq}
    if problem is not None:
        return {**out, "ok": False, "problem": problem, "first_bad_seq": bad_seq}
    return out
