"""The audit part of the approval service: history search, chain verification, head, export.

Mixed into :class:`engine.service.ApprovalService`; uses its ``db``, ``engine`` and ``_check``.
Visibility: anyone the policy gives a role somewhere may search (a viewer of one namespace
audits that namespace); they see the events of namespaces they may view, and events without
a namespace only when they are admin everywhere. Identities with no role at all are refused
(with an audit event). Chain verification and the head reveal no event content, so the same
rule applies to them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from signoff.engine.errors import UsageError
from signoff.engine.identity import Identity

if TYPE_CHECKING:
    from signoff.engine.core import Engine
    from signoff.engine.store import Database



class AuditMixin:
    db: Database
    engine: Engine
    _check: Callable[..., None]  # ApprovalService._check: refuses (and audits) what the policy forbids
    _view_filter: Callable[[Identity], Callable[[str], bool]]  # ApprovalService._view_filter: memoized view check

    def _audit_visible(self, actor: Identity) -> Callable[[str | None], bool] | None:
        """None when the actor sees every event, else a namespace -> bool predicate (events
        without a namespace are for admins only)."""
        if self.engine.policy.allows(actor, "admin", "*"):
            return None
        view = self._view_filter(actor)

        def visible(namespace: str | None) -> bool:
            return namespace is not None and view(namespace)

        return visible

    def _require_audit_access(self, actor: Identity) -> None:
        policy = self.engine.policy
        describe = getattr(policy, "describe", None)
        if describe is None or any(describe(actor).get("roles", {}).values()):
            return
        self._check(actor, "view", "*", "audit")  # refuses and audits

    def history(self, actor: Identity, query: str | None, *, limit: int = 50,
                before_seq: int | None = None) -> list[dict[str, Any]]:
        """Audit events matching ``query`` (engine.audit.search syntax), newest first.
        The next page is ``before_seq=<last result's seq>``."""
        self._require_audit_access(actor)
        if limit < 1:
            raise UsageError("--limit must be at least 1")
        from signoff.engine.audit import search  # on first use: kept off the console's start-up path
        from signoff.engine.nul import refuse_nul

        refuse_nul(query=query)  # PostgreSQL cannot search for it, SQLite could (engine.nul)
        q = search.parse_query(query, now=self.engine.clock.now())
        return search.search(self.db, q, limit=limit, before_seq=before_seq, visible=self._audit_visible(actor))

    def verify_audit(self, actor: Identity, expect_head: tuple[int, str] | None = None) -> dict[str, Any]:
        """Walk the whole chain: {ok, count, head, head_seq, first_bad_seq, problem}."""
        self._require_audit_access(actor)
        from signoff.engine.audit import verify
        from signoff.engine.signing.verify_all import with_signatures

        result = verify.verify_chain(self.db, expect_head=expect_head).to_dict()
        return with_signatures(result, self.db, self.engine.data_dir)

    def audit_head(self, actor: Identity) -> dict[str, Any] | None:
        """{seq, hash, at, checkpoint} of the newest event (keep it elsewhere to detect
        truncation), or None. The head is signed first (engine.signing.checkpoints), so
        ``checkpoint`` is the engine's signed checkpoint of it (the latest one when the data
        cannot be written)."""
        from signoff.engine.audit import verify
        from signoff.engine.errors import StorageError
        from signoff.engine.signing import checkpoints

        self._require_audit_access(actor)
        try:
            checkpoints.write_checkpoint(self.engine, force=True)
        except (StorageError, OSError):
            pass  # a read-only data directory: show the newest checkpoint there is
        found = verify.head(self.db)
        if found is None:
            return None
        row = self.db.query_one("SELECT at FROM audit WHERE seq=?", (found[0],))
        return {"seq": found[0], "hash": found[1], "at": row["at"] if row else None,
                "checkpoint": checkpoints.latest(self.db.connection())}

    def export_audit(self, actor: Identity, query: str | None) -> Iterator[dict[str, Any]]:
        """Every matching event, oldest first, streamed. Permission and query are checked now,
        before the first event is read."""
        self._require_audit_access(actor)
        now = self.engine.clock.now()
        from signoff.engine.audit import search

        q = search.parse_query(query, now=now)
        return search.iter_events(self.db, q, now=now, visible=self._audit_visible(actor))
