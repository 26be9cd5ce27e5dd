"""The remote backend: the console and the CLI talking to `signoff serve` over HTTP.

`RemoteBackend` implements the same `console.backend.Backend` protocol as `LocalBackend`,
with the same result shapes (the service's dicts, `Outcome` objects for decisions) and the
same errors (`NotFound`, `Refused`, `InvalidInputs`, `UsageError`), so every screen and
command behaves identically in both modes. Two errors exist only here: `AuthError` (the
server refused the token) and `ConnectionLost` (the server cannot be reached).

Network rules:

* TLS is always verified (``ca_cert`` adds a private CA; there is no switch to turn it off).
* Every call has a timeout. Connection-level failures are retried by the transport
  (``httpx.HTTPTransport(retries=3)``) for idempotent calls (GETs, validate); other calls use a
  transport without retries.
* Decisions always carry an idempotency key and go to the bulk endpoint in slices of at most
  ``DECIDE_SLICE`` ids, each slice with the key ``f"{key}:{slice_index}"``: progress callbacks
  work between slices, and a slice retried after a lost connection (once) is never decided
  twice - the server answers the stored outcomes.
* Live updates: the console polls :meth:`changes` (console.live), which also notices a server
  that came back with an older database; the server's event stream (``GET /events`` as
  ``text/event-stream``) is for other clients.

The token is sent as ``Authorization: Bearer ...`` and never logged, printed or stored here.

The same client speaks to the local server over its Unix socket (:meth:`RemoteBackend.local`,
``httpx.HTTPTransport(uds=PATH)``): no TLS and no token there, since the server learns who we
are from the kernel (the connecting process's uid), and sends nothing we could forge.
"""
from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from signoff.console.backend import REQUEST_ACTIONS, AuthError, Backend, Change, ConnectionLost
from signoff.engine.approvals import outcome as oc
from signoff.engine.approvals.outcome import Outcome
from signoff.engine.approvals.rows import row_tuple
from signoff.engine.errors import Conflict, InvalidInputs, NotFound, Refused, SignoffError, UsageError
from signoff.engine.inputs import paths_to_uploads

#: most ids sent in one bulk decision request (one idempotency sub-key each)
DECIDE_SLICE = 500
#: most ids in one signed bulk request (each carries ~1 kB of statement and signature)
SIGNED_SLICE = 250
#: most ids in one `GET /approvals?ids=` (keeps the URL short)
SUMMARY_SLICE = 100
#: page size when following cursors
PAGE = 500
#: the server's largest page of audit events and executions
AUDIT_PAGE = 1000
#: the largest sequence number; `/events?after=MAX_SEQ` answers only `last_seq`
MAX_SEQ = 2**63 - 1


def normalize_url(url: str) -> str:
    """``https://host:port[/prefix]`` without a trailing slash; refuses anything else."""
    text = (url or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"server URL must look like https://host:port, not `{url}`")
    if parts.query or parts.fragment:
        raise UsageError(f"server URL must not have a query or fragment: `{url}`")
    return text.rstrip("/")


def is_loopback(url: str) -> bool:
    """Does ``url`` point at this machine? (the server's own rule, applied to a URL's host)"""
    from signoff.engine.server.run import is_loopback as host_is_loopback

    return host_is_loopback(urlsplit(url).hostname or "")


def _ssl_context(ca_cert: str | None) -> ssl.SSLContext:
    if ca_cert is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot use CA certificate {ca_cert}: {exc}") from None


class RemoteBackend(Backend):
    """A `Backend` on a signoff server, acting as the owner of ``token``.

    ``token_source``: where the token came from (keyring, environment, file); with it,
    :meth:`refresh_token` picks up a new one (`signoff login` while the console runs)."""

    def __init__(self, url: str, token: str | None, *, ca_cert: str | None = None, timeout: float = 10.0,
                 check: bool = True, token_source: Callable[[], str] | None = None,
                 socket_path: str | None = None) -> None:
        #: the local server's Unix socket (None: TCP to ``url``)
        self.socket_path = str(socket_path) if socket_path else None
        self.url = normalize_url(url)
        #: shown in the console's status bar and in messages
        self.location = f"local server ({self.socket_path})" if self.socket_path else self.url
        self.timeout = timeout
        self._ssl = _ssl_context(ca_cert)
        headers = {"Accept": "application/json", "User-Agent": "signoff-client"}
        if token is not None and self.socket_path is None:
            headers["Authorization"] = f"Bearer {token}"
        transport: dict[str, Any] = {"uds": self.socket_path} if self.socket_path else {"verify": self._ssl}
        #: idempotent calls: the transport retries connection failures
        self._http = httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=timeout,
                                  transport=httpx.HTTPTransport(retries=3, **transport))
        #: everything else: one attempt (decide() retries a slice itself, with the same key)
        self._http_once = httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=timeout,
                                       transport=httpx.HTTPTransport(retries=0, **transport))
        self.identity = "?"
        self._token_source = token_source
        #: (namespace, flow id) -> ids of its FILE inputs, as last read (see _upload_files)
        self._file_inputs: dict[tuple[str, str], set[str]] = {}
        if check:
            try:
                self.me()
            except BaseException:
                self.close()
                raise

    @classmethod
    def local(cls, socket_path: str, *, timeout: float = 10.0, check: bool = True) -> RemoteBackend:
        """A client of the local server on its Unix socket (identity: this process's account)."""
        return cls("http://localhost", None, timeout=timeout, check=check, socket_path=socket_path)

    def __repr__(self) -> str:  # never shows the token
        return f"RemoteBackend({self.location!r}, identity={self.identity!r})"

    def refresh_token(self) -> None:
        """Read the token again from where it came from (no-op without a ``token_source``)."""
        if self._token_source is None or self.socket_path is not None:
            return
        authorization = f"Bearer {self._token_source()}"
        for client in (self._http, self._http_once):
            client.headers["Authorization"] = authorization

    # -- plumbing -------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, idempotent: bool, params: Mapping[str, Any] | None = None,
              body: Any = None, lenient_422: bool = False, yaml_text: str | None = None) -> Any:
        client = self._http if idempotent else self._http_once
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        extra: dict[str, Any] = {}
        if yaml_text is not None:  # flows over the API: the YAML text is the body
            extra = {"content": yaml_text.encode("utf-8"), "headers": {"Content-Type": "application/x-yaml"}}
        try:
            response = client.request(method, path, params=clean or None,
                                      json=body if body is not None else None, **extra)
        except httpx.TransportError as exc:
            raise self._lost(exc) from None
        if lenient_422 and response.status_code == 422:
            problem = _problem(response)
            if isinstance(problem.get("errors"), dict):
                return {"errors": problem["errors"]}
            if isinstance(problem.get("problems"), list):
                return {"problems": problem["problems"]}
        if response.status_code >= 400:
            raise self._error(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise SignoffError(f"{self.location} answered {method} {path} with something that is not JSON "
                               f"(is this a signoff server?)") from None

    def _lost(self, exc: Exception) -> ConnectionLost:
        if isinstance(exc, httpx.TimeoutException):
            return ConnectionLost(f"the signoff server at {self.location} did not answer within {self.timeout:g}s")
        text = str(exc) or type(exc).__name__
        if self.socket_path is not None:
            return ConnectionLost(f"cannot reach the {self.location}: {text}{_socket_hint(text, self.socket_path)}")
        if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(getattr(exc, "__context__", None), ssl.SSLError):
            return ConnectionLost(f"cannot verify the TLS certificate of {self.url} ({text}); "
                                  "pass --ca-cert FILE if it is signed by a private CA")
        return ConnectionLost(f"cannot reach the signoff server at {self.url}: {text}")

    def _error(self, response: httpx.Response) -> SignoffError:
        problem = _problem(response)
        status = response.status_code
        detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase or f"HTTP {status}")
        if status == 401 and self.socket_path is not None:
            return Refused(detail)
        if status == 401:
            return AuthError(f"{self.url} did not accept the token ({detail}); "
                             f"run `signoff login {self.url}` with a valid token")
        if status == 403:
            return Refused(detail)
        if status == 404:
            return NotFound(detail)
        if status == 409:
            return Conflict(detail)
        if status == 422 and isinstance(problem.get("errors"), dict) and problem["errors"]:
            return InvalidInputs({str(k): str(v) for k, v in problem["errors"].items()})
        if status in (400, 413, 422):
            return UsageError(detail)
        if status == 429:
            return Refused(f"the server is slowing us down: {detail}")
        return SignoffError(f"the signoff server at {self.location} failed ({status}): {detail}")

    def _get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, idempotent=True, params=params)

    def _object(self, method: str, path: str, answer: Any) -> dict[str, Any]:
        """``answer`` when it is a JSON object, as every resource of the API is; anything else
        is a server we do not understand, said plainly instead of failing later on a key."""
        if not isinstance(answer, dict):
            raise SignoffError(f"{self.url} answered {method} {path} with {type(answer).__name__}, "
                               "not a JSON object (is this a signoff server?)")
        return answer

    def _get_object(self, path: str, **params: Any) -> dict[str, Any]:
        return self._object("GET", path, self._get(path, **params))

    def _paged(self, path: str, *, page_size: int, limit: int | None = None, cursor: Any = None,
               **params: Any) -> list[dict[str, Any]]:
        """The items of a cursor-paged list (``{items, next_cursor}``), page after page until
        ``limit`` items (None: all of them) or the end."""
        items: list[dict[str, Any]] = []
        while limit is None or len(items) < limit:
            size = page_size if limit is None else min(page_size, limit - len(items))
            page = self._get(path, limit=size, cursor=cursor, **params)
            got = page.get("items") or []
            items.extend(got)
            cursor = page.get("next_cursor")
            if cursor is None or cursor == "" or not got:
                break
        return items if limit is None else items[:limit]

    # -- identity -------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        """Who the token belongs to: {name, groups, roles...}; also sets ``identity``."""
        me = self._get_object("/me")
        self.identity = str(me.get("name") or "?")
        return me

    # -- requests -------------------------------------------------------------------------
    def list_pending(self, *, q: str | None = None, namespace: str | None = None,
                     flow: str | None = None) -> list[dict[str, Any]]:
        return self._paged("/approvals", page_size=PAGE, status="pending", q=q or None, namespace=namespace,
                           flow=flow)

    def pending_rows(self, *, limit: int | None = None,
                     convert: Callable[[list[tuple[Any, ...]]], list[Any]] | None = None) -> list[Any]:
        """list_pending as compact tuples (engine.approvals.rows.PENDING_ROW_FIELDS); with ``limit``
        only the first pages are fetched."""
        items = self._paged("/approvals", page_size=PAGE, limit=limit, status="pending")
        rows = [row_tuple(item) for item in items]
        return convert(rows) if convert is not None else rows

    def pending_summaries(self, request_ids: Sequence[str]) -> list[dict[str, Any]]:
        wanted = list(dict.fromkeys(request_ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), SUMMARY_SLICE):
            chunk = wanted[start:start + SUMMARY_SLICE]
            for item in self._get("/approvals", ids=",".join(chunk)).get("items") or []:
                found[item["id"]] = item
        return [found[i] for i in wanted if i in found]

    def get_request(self, request_id: str) -> dict[str, Any]:
        return self._get_object(f"/approvals/{_seg(request_id)}")

    def validate(self, request_id: str, inputs: Mapping[str, Any]) -> dict[str, str]:
        answer = self._call("POST", f"/approvals/{_seg(request_id)}/validate", idempotent=True,
                            body={"inputs": dict(inputs)}, lenient_422=True)
        return dict((answer or {}).get("errors") or {})

    def decide(self, request_ids: Sequence[str], verdict: str, *, inputs: Mapping[str, Any] | None = None,
               reason: str | None = None, idempotency_key: str | None = None,
               progress: Callable[[int, int], bool] | None = None,
               signatures: Mapping[str, Any] | None = None) -> list[Outcome]:
        if verdict not in ("approve", "deny"):  # the service's own words, before any traffic
            raise UsageError(f"verdict must be `approve` or `deny`, not `{verdict}`")
        id_list = list(dict.fromkeys(request_ids))
        key = idempotency_key or uuid.uuid4().hex
        outcomes: list[Outcome] = []
        # signed slices are smaller: an item signed on its own carries its statement (~1 kB)
        size = SIGNED_SLICE if signatures else DECIDE_SLICE
        for index, start in enumerate(range(0, len(id_list), size)):
            chunk = id_list[start:start + size]
            body = {"ids": chunk, "verdict": verdict, "inputs": dict(inputs or {}), "reason": reason,
                    "idempotency_key": f"{key}:{index}"}
            if signatures:
                body.update(_signed_body(signatures, chunk))
            try:
                answer = self._call("POST", "/approvals/bulk", idempotent=False, body=body)
            except ConnectionLost:
                # the slice may or may not have been applied: the same key makes the retry safe
                try:
                    answer = self._call("POST", "/approvals/bulk", idempotent=False, body=body)
                except ConnectionLost as exc:
                    done = f"; {len(outcomes)} of {len(id_list)} were decided before" if outcomes else ""
                    raise ConnectionLost(f"{exc.message}{done}") from None
            outcomes.extend(Outcome.from_dict(d) for d in (answer or {}).get("outcomes") or [])
            if progress is not None and progress(len(outcomes), len(id_list)) is False:
                outcomes += oc.not_attempted(id_list[len(outcomes):])
                break
        return outcomes

    def cancel(self, request_ids: Sequence[str], reason: str | None = None,
               signatures: Mapping[str, Any] | None = None) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for request_id in dict.fromkeys(request_ids):
            signed = (signatures or {}).get(request_id)
            outcomes.append(self._cancel_one(request_id, reason, dict(signed) if signed else None))
        return outcomes

    def _cancel_one(self, request_id: str, reason: str | None, signature: dict[str, Any] | None = None) -> Outcome:
        body: dict[str, Any] = {"reason": reason}
        if signature is not None:
            body["signature"] = signature
        try:
            response = self._http_once.post(f"/approvals/{_seg(request_id)}/cancel", json=body)
        except httpx.TransportError as exc:
            raise self._lost(exc) from None
        body = _problem(response)
        if isinstance(body.get("outcome"), dict):  # a problem document carrying the outcome
            return Outcome.from_dict(body["outcome"])
        if "outcome" in body and "id" in body:
            return Outcome.from_dict(body)
        if response.status_code < 400:
            raise SignoffError(f"{self.url} answered a cancel without an outcome")
        detail = str(body.get("detail") or body.get("title") or f"HTTP {response.status_code}")
        if response.status_code == 404:
            return Outcome(request_id, oc.NOT_FOUND, detail)
        if response.status_code == 409:
            return Outcome(request_id, oc.ALREADY_DECIDED, detail, state=body.get("state"))
        if response.status_code == 403:
            return Outcome(request_id, oc.NOT_ELIGIBLE, detail, state="PENDING")
        raise self._error(response)

    # -- signed decisions (engine.signing) ----------------------------------------------------
    def signing_material(self, request_ids: Sequence[str], verdict: str,
                         inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """As the service's, in slices of at most 1000 ids (one nonce each: any one serves)."""
        ids = list(dict.fromkeys(request_ids))
        merged: dict[str, Any] | None = None
        for start in range(0, len(ids), 1000):
            answer = self._call("POST", "/signing/material", idempotent=False,
                                body={"ids": ids[start:start + 1000], "verdict": verdict, "inputs": dict(inputs or {})})
            if merged is None:
                merged = dict(answer)
            else:
                merged["items"] = [*merged["items"], *answer["items"]]
        return merged or {"nonce": "", "expires_at": "", "signer": self.identity, "items": []}

    def list_keys(self, user: str | None = None, all_users: bool = False) -> list[dict[str, Any]]:
        return list(self._get("/keys", user=user, all="true" if all_users else None).get("items") or [])

    def key_challenge(self) -> dict[str, str]:
        return dict(self._call("POST", "/keys/challenge", idempotent=False))

    def add_key(self, public_key: str, *, nonce: str | None = None, signature: str | None = None,
                user: str | None = None) -> dict[str, Any]:
        return dict(self._call("POST", "/keys", idempotent=False,
                               body={"public_key": public_key, "nonce": nonce, "signature": signature, "user": user}))

    def revoke_key(self, fingerprint: str, user: str | None = None) -> dict[str, Any]:
        return dict(self._call("POST", "/keys/revoke", idempotent=False,
                               body={"fingerprint": fingerprint, "user": user}))

    def allowed_signers(self, user: str | None = None) -> str:
        try:
            response = self._http.get("/keys/allowed-signers", params={"user": user} if user else None)
        except httpx.TransportError as exc:
            raise self._lost(exc) from None
        if response.status_code >= 400:
            raise self._error(response)
        return response.text

    def audit_evidence(self, request_id: str) -> dict[str, Any]:
        return dict(self._get(f"/audit/evidence/{_seg(request_id)}"))

    # -- audit ----------------------------------------------------------------------------
    def history(self, query: str, *, limit: int = 100, before_seq: int | None = None) -> list[dict[str, Any]]:
        """Newest first, as the service; pages of at most 1000 (the server's limit) are joined."""
        if limit < 1:
            raise UsageError("--limit must be at least 1")
        return self._paged("/audit", page_size=AUDIT_PAGE, limit=limit, cursor=before_seq, q=query or None)

    def verify_audit(self, expect_head: tuple[int, str] | None = None) -> dict[str, Any]:
        if expect_head is None:
            return self._get_object("/audit/verify")
        return self._get_object("/audit/verify", head=f"{expect_head[0]}:{expect_head[1]}")

    def audit_head(self) -> dict[str, Any] | None:
        head = self._get("/audit/head")
        return None if head is None else self._object("GET", "/audit/head", head)

    def export_audit(self, query: str) -> Iterator[dict[str, Any]]:
        """Every matching event, oldest first. Pages are read now (so permission and query
        errors surface before the first event), newest first, then handed out reversed."""
        newest_first = self._paged("/audit", page_size=AUDIT_PAGE, q=query or None)
        return iter(newest_first[::-1])

    # -- flows and executions ------------------------------------------------------------
    def flow_problems(self) -> list[str]:
        """Flow files the server cannot load (the server tells admins only)."""
        return list(self._get("/flows").get("problems") or [])

    def list_flows(self) -> list[dict[str, Any]]:
        return self._get("/flows").get("items") or []

    def validate_flow_inputs(self, namespace: str, flow_id: str, inputs: Mapping[str, Any]) -> dict[str, str]:
        sent, local_errors = self._upload_files(namespace, flow_id, inputs, content=False)
        answer = self._call("POST", f"/flows/{_seg(namespace)}/{_seg(flow_id)}/validate", idempotent=True,
                            body={"inputs": sent}, lenient_422=True)
        errors = dict((answer or {}).get("errors") or {})
        errors.update(local_errors)  # a left-out file's "missing" is replaced by why it is left out
        return errors

    def start_execution(self, namespace: str, flow_id: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        sent, local_errors = self._upload_files(namespace, flow_id, inputs)
        if local_errors:
            raise InvalidInputs(local_errors)
        answer = self._call("POST", "/executions", idempotent=False,
                            body={"namespace": namespace, "flow_id": flow_id, "inputs": sent})
        return self._object("POST", "/executions", answer)

    def _upload_files(self, namespace: str, flow_id: str, inputs: Mapping[str, Any], *,
                      content: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
        """A server never reads a path its caller names (engine.inputs.uploads): FILE inputs
        given as local paths are read here, as the person running the client, and sent as
        content. Which inputs are FILE costs a GET of the flow when some input is text: once
        per start, and once per flow for the console's checks after every change of a form."""
        if not any(isinstance(v, (str, Mapping)) for v in inputs.values()):
            return dict(inputs), {}
        file_ids = self._file_inputs.get((namespace, flow_id))
        if file_ids is None or content:  # a start reads the flow afresh; a form's checks reuse it
            specs = self.get_flow(namespace, flow_id).get("inputs") or []
            file_ids = {str(s.get("id")) for s in specs if str(s.get("type", "")).upper() == "FILE"}
            self._file_inputs[(namespace, flow_id)] = file_ids
        if not file_ids:
            return dict(inputs), {}
        return paths_to_uploads(file_ids, inputs, content=content)

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        return self._get_object(f"/executions/{_seg(execution_id)}")

    def list_executions(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        # the server answers at most AUDIT_PAGE executions and has no cursor for them
        return self._get("/executions", state=state, limit=min(limit, AUDIT_PAGE)).get("items") or []

    def get_flow(self, namespace: str, flow_id: str, revision: int | None = None) -> dict[str, Any]:
        return self._get_object(f"/flows/{_seg(namespace)}/{_seg(flow_id)}", revision=revision)

    def push_flow(self, text: str) -> dict[str, Any]:
        """Create the flow, or make a new revision when it exists (what `flows push` does)."""
        problems = self.check_flow_text(text)  # the server's own checks, with line numbers
        if problems:
            raise UsageError("\n".join(f"{p['line']}:{p['col']}: {p['message']}" for p in problems))
        try:
            return self._object("PUT", "/flows", self._call("POST", "/flows", idempotent=False, yaml_text=text))
        except Conflict:  # it exists: a new revision of it
            namespace, flow_id = _flow_key(text)
            path = f"/flows/{_seg(namespace)}/{_seg(flow_id)}"
            return self._object("PUT", path, self._call("PUT", path, idempotent=True, yaml_text=text))

    def delete_flow(self, namespace: str, flow_id: str) -> dict[str, Any]:
        path = f"/flows/{_seg(namespace)}/{_seg(flow_id)}"
        return self._object("DELETE", path, self._call("DELETE", path, idempotent=True))

    def flow_revisions(self, namespace: str, flow_id: str) -> list[dict[str, Any]]:
        return list(self._get_object(f"/flows/{_seg(namespace)}/{_seg(flow_id)}/revisions").get("items") or [])

    def check_flow_text(self, text: str) -> list[dict[str, Any]]:
        response = self._call("POST", "/flows/validate", idempotent=True, yaml_text=text, lenient_422=True)
        return list(response.get("problems") or [])

    def stats(self, *, since: str = "30d", namespace: str | None = None) -> dict[str, Any]:
        return self._get_object("/stats", since=since, namespace=namespace)

    def list_triggers(self) -> list[dict[str, Any]]:
        return list(self._get_object("/triggers").get("items") or [])

    def set_trigger_enabled(self, namespace: str, flow_id: str, trigger_id: str, enabled: bool) -> dict[str, Any]:
        switch = "enable" if enabled else "disable"
        path = f"/triggers/{_seg(namespace)}/{_seg(flow_id)}/{_seg(trigger_id)}/{switch}"
        return self._object("POST", path, self._call("POST", path, idempotent=True))

    def restart_execution(self, execution_id: str) -> dict[str, Any]:
        path = f"/executions/{_seg(execution_id)}/restart"
        return self._object("POST", path, self._call("POST", path, idempotent=False, body={}))

    def replay_execution(self, execution_id: str, *, from_task: str | None = None,
                         revision: int | None = None) -> dict[str, Any]:
        path = f"/executions/{_seg(execution_id)}/replay"
        return self._object("POST", path, self._call("POST", path, idempotent=False,
                                                     body={"from_task": from_task, "revision": revision}))

    def kv_set(self, namespace: str, key: str, value: Any) -> None:
        self._call("PUT", f"/kv/{_seg(namespace)}/{_seg(key)}", idempotent=True, body={"value": value})

    # -- changes --------------------------------------------------------------------------
    def last_change(self) -> int:
        return int(self._get("/events", after=MAX_SEQ, limit=1).get("last_seq") or 0)

    def changes(self, after: int, limit: int = 1000) -> list[Change]:
        """The first ``limit`` request changes after ``after`` (as LocalBackend.changes). The
        server answers windows of sequence numbers (``(after, last_seq]``, at most ``limit``
        wide), which may hold no request change at all: read windows until ``limit`` changes
        are found or the newest event is reached."""
        found: list[Change] = []
        cursor = after
        window = min(max(limit, 1), 1000)
        while len(found) < limit:
            answer = self._get("/events", after=cursor, limit=window)
            found.extend(c for c in (_change(d) for d in answer.get("items") or []) if c is not None)
            last = int(answer.get("last_seq") or cursor)
            if last < cursor + window:  # the window ended at the newest event
                break
            cursor = last
        return found[:limit]

    # -- housekeeping ---------------------------------------------------------------------
    def tick(self) -> None:
        """Nothing to do: the server runs the timers and the executions."""

    def close(self) -> None:
        self._http.close()
        self._http_once.close()

    def __enter__(self) -> RemoteBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _socket_hint(text: str, path: str) -> str:
    """What to do about a local socket we cannot connect to."""
    if "Errno 2]" in text or "No such file" in text:
        return (f" (no local server there: its administrator starts it with `signoff serve --socket {path}`; "
                "see README \"Sharing one machine\")")
    if "Errno 111]" in text or "refused" in text.lower():
        return " (the local server is not running; its administrator restarts it, e.g. `systemctl start signoff`)"
    if "Errno 13]" in text or "Permission denied" in text:
        return (" (your account may not connect to it: the socket's group decides who may; ask the "
                "administrator to add you to that group, then log in again)")
    return ""


def _change(d: Mapping[str, Any]) -> Change | None:
    """A Change from an event document, or None for actions the console does not follow."""
    if d.get("action") not in REQUEST_ACTIONS or d.get("seq") is None:
        return None
    return Change(int(d["seq"]), str(d["action"]), d.get("request_id"), d.get("execution_id"),
                  str(d.get("actor") or ""))


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _signed_body(signatures: Mapping[str, Any], chunk: Sequence[str]) -> dict[str, Any]:
    """The signatures of ``chunk`` as the bulk endpoint takes them: statements that sign one
    request by id (``signatures``), statements that list many once each (``batches``)."""
    from signoff.engine.signing.statement import is_batch

    single: dict[str, dict[str, str]] = {}
    batches: dict[str, dict[str, str]] = {}
    for request_id in chunk:
        signed = signatures.get(request_id)
        if signed is None:
            continue
        if is_batch(signed["statement"]):
            batches.setdefault(signed["statement"], {"statement": signed["statement"],
                                                     "signature": signed["signature"]})
        else:
            single[request_id] = {"statement": signed["statement"], "signature": signed["signature"]}
    out: dict[str, Any] = {}
    if single:
        out["signatures"] = single
    if batches:
        out["batches"] = list(batches.values())
    return out


def _seg(value: str) -> str:
    """One URL path segment (ids never contain '/', but never trust that)."""
    return quote(str(value), safe="")



def _flow_key(text: str) -> tuple[str, str]:
    """The namespace and id a flow text declares (it passed the server's checks already)."""
    import yaml

    data = yaml.safe_load(text)
    return str(data["namespace"]), str(data["id"])
