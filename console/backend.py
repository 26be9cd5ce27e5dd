"""The console's only door to the engine (ARCHITECTURE.md, "The one seam").

`Backend` lists what the console may do; `LocalBackend` runs the approval service in-process
on the SQLite file; the remote backend (server mode) talks HTTP to `signoff serve` with the
same methods and the same result shapes, so every screen works unchanged on both.

All methods block (they do I/O): the console calls them from worker threads only.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from signoff.engine.approvals.outcome import Outcome
from signoff.engine.audit.actions import CHANGE_ACTIONS
from signoff.engine.errors import SignoffError

if TYPE_CHECKING:
    from signoff.engine.identity import Identity
    from signoff.engine.service import ApprovalService


@dataclass(frozen=True)
class Change:
    """Something that happened since the console last looked (from the audit sequence)."""

    seq: int
    action: str  # request.created / request.approved / request.denied / request.cancelled / ...
    request_id: str | None
    execution_id: str | None
    actor: str


class AuthError(SignoffError):
    """The server does not accept our token (missing, wrong, revoked or expired)."""

    exit_code = 1


class ConnectionLost(SignoffError):
    """The server cannot be reached (refused, reset, timed out, TLS failure)."""

    exit_code = 1


# (the two above are raised by the remote backend only; they live here so that the console
# can catch them without importing the HTTP client in local mode)

#: the console paints this many pending rows first, then loads the rest of a long list
FIRST_PAGE = 200

#: audit actions after which a request may have entered or left the pending list
REQUEST_ACTIONS = CHANGE_ACTIONS


class Backend(Protocol):
    """What the console and the CLI may ask of the engine; both backends subclass this
    Protocol explicitly, so a type checker holds them to it, and they inherit the defaults
    below for the parts where a backend has nothing to do (the remote backend prefetches
    nothing and never defers a tick; the local one has no token to refresh)."""

    #: who is acting, as shown in the status bar ("?" until a remote backend asked the server)
    identity: str
    #: where the engine is: "embedded · /path/to/data" or the server URL
    location: str
    #: the engine's tick that start-up skipped (console.cli) and the pending view owes once
    #: its list is loaded: see :meth:`run_deferred_tick`
    tick_after_load: bool = False

    def me(self) -> dict[str, Any]:
        """Who we are to the engine: {name, groups, roles...}; also sets ``identity``."""
        ...

    def list_pending(self, *, q: str | None = None, namespace: str | None = None,
                     flow: str | None = None) -> list[dict[str, Any]]: ...

    def pending_rows(self, *, limit: int | None = None,
                     convert: Callable[[list[tuple[Any, ...]]], list[Any]] | None = None) -> list[Any]:
        """The pending list (as list_pending, unfiltered) as compact tuples with the fields of
        engine.approvals.rows.PENDING_ROW_FIELDS; ``limit``: only the first rows (the console's
        first paint); ``convert`` maps batches of tuples (to the console's row objects)."""
        ...

    def prefetch_pending(self, limit: int = FIRST_PAGE) -> None:
        """Start reading the first ``limit`` pending rows while the console is still starting
        (see :meth:`take_prefetched`). Default: nothing (a backend without a head start)."""
        return None

    def take_prefetched(self, limit: int) -> tuple[int, list[tuple[Any, ...]]] | None:
        """(change sequence, rows) read by :meth:`prefetch_pending`, if they are there already
        (never waits); only once, only for the same ``limit``. Default: None (nothing read)."""
        return None

    def refresh_token(self) -> None:
        """Read the credentials again (after `signoff login` while the console runs).
        Default: nothing (a backend without a token)."""
        return None

    def run_deferred_tick(self) -> None:
        """Run the tick that start-up left for later (``tick_after_load``), once; its changes
        reach the console through the next poll. A failure is left to the poll's own tick."""
        if not self.tick_after_load:
            return
        self.tick_after_load = False
        try:
            self.tick()
        except Exception:  # noqa: BLE001 - the poll ticks again within seconds
            pass

    def get_request(self, request_id: str) -> dict[str, Any]: ...

    def pending_summaries(self, request_ids: Sequence[str]) -> list[dict[str, Any]]: ...

    def validate(self, request_id: str, inputs: Mapping[str, Any]) -> dict[str, str]: ...

    def decide(self, request_ids: Sequence[str], verdict: str, *, inputs: Mapping[str, Any] | None = None,
               reason: str | None = None, idempotency_key: str | None = None,
               progress: Callable[[int, int], bool] | None = None,
               signatures: Mapping[str, Any] | None = None) -> list[Outcome]:
        """``signatures``: request id -> {statement, signature} made by console.signing."""
        ...

    def cancel(self, request_ids: Sequence[str], reason: str | None = None,
               signatures: Mapping[str, Any] | None = None) -> list[Outcome]: ...

    # signed decisions (console/signing.py): both backends implement these
    def list_keys(self, user: str | None = None, all_users: bool = False) -> list[dict[str, Any]]: ...

    def signing_material(self, request_ids: Sequence[str], verdict: str,
                         inputs: Mapping[str, Any] | None = None) -> dict[str, Any]: ...

    def key_challenge(self) -> dict[str, str]: ...

    def add_key(self, public_key: str, *, nonce: str | None = None, signature: str | None = None,
                user: str | None = None) -> dict[str, Any]: ...

    def revoke_key(self, fingerprint: str, user: str | None = None) -> dict[str, Any]: ...

    def allowed_signers(self, user: str | None = None) -> str: ...

    def audit_evidence(self, request_id: str) -> dict[str, Any]: ...

    def history(self, query: str, *, limit: int = 100, before_seq: int | None = None) -> list[dict[str, Any]]: ...

    def verify_audit(self, expect_head: tuple[int, str] | None = None) -> dict[str, Any]: ...

    def export_audit(self, query: str) -> Iterator[dict[str, Any]]: ...

    def list_flows(self) -> list[dict[str, Any]]: ...

    def validate_flow_inputs(self, namespace: str, flow_id: str, inputs: Mapping[str, Any]) -> dict[str, str]: ...

    def start_execution(self, namespace: str, flow_id: str, inputs: Mapping[str, Any]) -> dict[str, Any]: ...

    def get_execution(self, execution_id: str) -> dict[str, Any]: ...

    def list_executions(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...

    def restart_execution(self, execution_id: str) -> dict[str, Any]: ...

    def list_triggers(self) -> list[dict[str, Any]]: ...

    def stats(self, *, since: str = "30d", namespace: str | None = None) -> dict[str, Any]: ...

    def get_flow(self, namespace: str, flow_id: str, revision: int | None = None) -> dict[str, Any]: ...

    def push_flow(self, text: str) -> dict[str, Any]: ...

    def delete_flow(self, namespace: str, flow_id: str) -> dict[str, Any]: ...

    def flow_revisions(self, namespace: str, flow_id: str) -> list[dict[str, Any]]: ...

    def check_flow_text(self, text: str) -> list[dict[str, Any]]: ...

    def set_trigger_enabled(self, namespace: str, flow_id: str, trigger_id: str, enabled: bool) -> dict[str, Any]: ...

    def replay_execution(self, execution_id: str, *, from_task: str | None = None,
                         revision: int | None = None) -> dict[str, Any]: ...

    def kv_set(self, namespace: str, key: str, value: Any) -> None: ...

    def audit_head(self) -> dict[str, Any] | None: ...

    def flow_problems(self) -> list[str]: ...

    def last_change(self) -> int: ...

    def changes(self, after: int, limit: int = 1000) -> list[Change]: ...

    def tick(self) -> None: ...

    def close(self) -> None: ...


class LocalBackend(Backend):
    """The embedded engine, in this process, acting as this process's OS account.

    ``origin`` is what the audit trail records as the decisions' source ("console", or "cli"
    when the command line uses this backend)."""

    def __init__(self, service: ApprovalService, identity: Identity | None = None, *,
                 origin: str = "console") -> None:
        from signoff.engine.identity import os_identity

        self.service = service
        self.origin = origin
        self.actor = identity or os_identity()
        self.identity = self.actor.name
        self.location = f"embedded · {service.engine.data_dir}"

    def me(self) -> dict[str, Any]:
        info = self.service.engine.policy.describe(self.actor)
        return {**info, "name": self.actor.name, "groups": list(info.get("groups", self.actor.groups))}

    def list_pending(self, *, q: str | None = None, namespace: str | None = None,
                     flow: str | None = None) -> list[dict[str, Any]]:
        return self.service.list_pending(self.actor, q=q, namespace=namespace, flow=flow)

    def pending_rows(self, *, limit: int | None = None,
                     convert: Callable[[list[tuple[Any, ...]]], list[Any]] | None = None) -> list[Any]:
        return self.service.pending_rows(self.actor, limit=limit, convert=convert)

    def pending_summaries(self, request_ids: Sequence[str]) -> list[dict[str, Any]]:
        return self.service.request_summaries(self.actor, request_ids)

    _prefetch: tuple[Any, ...] | None = None

    def prefetch_pending(self, limit: int = FIRST_PAGE) -> None:
        """Start reading the change sequence and the first ``limit`` pending rows in a thread,
        while the console is still importing and composing (see :meth:`take_prefetched`)."""
        import threading

        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = (self.last_change(), self.pending_rows(limit=limit))
            except Exception:  # noqa: BLE001 - the console's own load reports errors
                pass

        thread = threading.Thread(target=run, name="signoff-prefetch", daemon=True)
        self._prefetch = (thread, box, limit)
        thread.start()

    def take_prefetched(self, limit: int) -> tuple[int, list[tuple[Any, ...]]] | None:
        """(sequence, rows) read by :meth:`prefetch_pending` if they are there already (never
        waits); only once, and only for the same ``limit``."""
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is None:
            return None
        thread, box, wanted = prefetch
        if wanted != limit or thread.is_alive():
            return None
        value: tuple[int, list[tuple[Any, ...]]] | None = box.get("value")
        return value

    def get_request(self, request_id: str) -> dict[str, Any]:
        return self.service.get_request(self.actor, request_id)

    def validate(self, request_id: str, inputs: Mapping[str, Any]) -> dict[str, str]:
        return self.service.validate(self.actor, request_id, inputs)

    def decide(self, request_ids: Sequence[str], verdict: str, *, inputs: Mapping[str, Any] | None = None,
               reason: str | None = None, idempotency_key: str | None = None,
               progress: Callable[[int, int], bool] | None = None,
               signatures: Mapping[str, Any] | None = None) -> list[Outcome]:
        return self.service.decide(self.actor, request_ids, verdict, inputs=inputs, reason=reason,
                                   idempotency_key=idempotency_key, origin=self.origin, progress=progress,
                                   signatures=signatures)

    def cancel(self, request_ids: Sequence[str], reason: str | None = None,
               signatures: Mapping[str, Any] | None = None) -> list[Outcome]:
        return self.service.cancel(self.actor, request_ids, reason, origin=self.origin, signatures=signatures)

    # -- signed decisions (engine.signing) ------------------------------------------------
    def signing_material(self, request_ids: Sequence[str], verdict: str,
                         inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.service.signing_material(self.actor, request_ids, verdict, inputs)

    def list_keys(self, user: str | None = None, all_users: bool = False) -> list[dict[str, Any]]:
        return self.service.list_keys(self.actor, user, all_users)

    def key_challenge(self) -> dict[str, str]:
        return self.service.key_challenge(self.actor)

    def add_key(self, public_key: str, *, nonce: str | None = None, signature: str | None = None,
                user: str | None = None) -> dict[str, Any]:
        return self.service.add_key(self.actor, public_key, nonce=nonce, signature=signature, user=user)

    def revoke_key(self, fingerprint: str, user: str | None = None) -> dict[str, Any]:
        return self.service.revoke_key(self.actor, fingerprint, user)

    def allowed_signers(self, user: str | None = None) -> str:
        return self.service.allowed_signers(self.actor, user)

    def audit_evidence(self, request_id: str) -> dict[str, Any]:
        return self.service.audit_evidence(self.actor, request_id)

    def history(self, query: str, *, limit: int = 100, before_seq: int | None = None) -> list[dict[str, Any]]:
        return self.service.history(self.actor, query, limit=limit, before_seq=before_seq)

    def verify_audit(self, expect_head: tuple[int, str] | None = None) -> dict[str, Any]:
        return self.service.verify_audit(self.actor, expect_head=expect_head)

    def export_audit(self, query: str) -> Iterator[dict[str, Any]]:
        return self.service.export_audit(self.actor, query)

    def list_flows(self) -> list[dict[str, Any]]:
        return self.service.list_flows(self.actor)

    def validate_flow_inputs(self, namespace: str, flow_id: str, inputs: Mapping[str, Any]) -> dict[str, str]:
        return self.service.check_flow_inputs(self.actor, namespace, flow_id, inputs)

    def start_execution(self, namespace: str, flow_id: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return self.service.start_execution(self.actor, namespace, flow_id, inputs)

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        return self.service.get_execution(self.actor, execution_id)

    def list_executions(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self.service.list_executions(self.actor, state=state, limit=limit)

    def restart_execution(self, execution_id: str) -> dict[str, Any]:
        return self.service.restart_execution(self.actor, execution_id)

    def list_triggers(self) -> list[dict[str, Any]]:
        return self.service.list_triggers(self.actor)

    def stats(self, *, since: str = "30d", namespace: str | None = None) -> dict[str, Any]:
        return self.service.stats(self.actor, since=since, namespace=namespace)

    def get_flow(self, namespace: str, flow_id: str, revision: int | None = None) -> dict[str, Any]:
        return self.service.get_flow(self.actor, namespace, flow_id, revision=revision)

    def push_flow(self, text: str) -> dict[str, Any]:
        return self.service.save_flow(self.actor, text, mode="upsert")

    def delete_flow(self, namespace: str, flow_id: str) -> dict[str, Any]:
        return self.service.delete_flow(self.actor, namespace, flow_id)

    def flow_revisions(self, namespace: str, flow_id: str) -> list[dict[str, Any]]:
        return self.service.flow_revisions(self.actor, namespace, flow_id)

    def check_flow_text(self, text: str) -> list[dict[str, Any]]:
        return self.service.check_flow_text(text)

    def set_trigger_enabled(self, namespace: str, flow_id: str, trigger_id: str, enabled: bool) -> dict[str, Any]:
        return self.service.set_trigger_enabled(self.actor, namespace, flow_id, trigger_id, enabled)

    def replay_execution(self, execution_id: str, *, from_task: str | None = None,
                         revision: int | None = None) -> dict[str, Any]:
        return self.service.replay_execution(self.actor, execution_id, from_task=from_task, revision=revision)

    def kv_set(self, namespace: str, key: str, value: Any) -> None:
        self.service.kv_set(self.actor, namespace, key, value)

    def audit_head(self) -> dict[str, Any] | None:
        return self.service.audit_head(self.actor)

    def flow_problems(self) -> list[str]:
        return self.service.flow_problems()

    def last_change(self) -> int:
        return self.service.last_change()

    def changes(self, after: int, limit: int = 1000) -> list[Change]:
        return [Change(c["seq"], c["action"], c["request_id"], c["execution_id"], c["actor"])
                for c in self.service.changes(self.actor, after, limit=limit, actions=REQUEST_ACTIONS)]

    def tick(self) -> None:
        self.service.tick()

    def close(self) -> None:
        self.service.engine.close()
