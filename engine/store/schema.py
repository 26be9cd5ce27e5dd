"""Schema of the signoff database, by version. Each entry upgrades from the version before.

Times are fixed-width UTC ISO strings (see engine.clock.format_time) so they sort as text.
JSON columns hold canonical JSON text.
"""

SCHEMA_VERSION = 17

MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE flow_revisions (
    namespace TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (namespace, flow_id, revision),
    UNIQUE (namespace, flow_id, sha256)
);

CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    state TEXT NOT NULL,
    inputs TEXT NOT NULL,
    labels TEXT NOT NULL,
    started_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    ended_at TEXT,
    error TEXT
);
CREATE INDEX executions_by_state ON executions(state, created_at);
CREATE INDEX executions_by_flow ON executions(namespace, flow_id, created_at);

CREATE TABLE task_runs (
    execution_id TEXT NOT NULL,
    path TEXT NOT NULL,
    task_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    outputs TEXT NOT NULL DEFAULT '{}',
    value TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    error TEXT,
    seq INTEGER NOT NULL,
    PRIMARY KEY (execution_id, path)
);

CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    execution_id TEXT NOT NULL,
    path TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX logs_by_execution ON logs(execution_id, id);

CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    task_path TEXT NOT NULL,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    state TEXT NOT NULL,
    summary TEXT NOT NULL,
    context TEXT NOT NULL,
    form TEXT NOT NULL,
    rules TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    due_at TEXT,
    decided_at TEXT,
    result TEXT,
    UNIQUE (execution_id, task_path)
);
CREATE INDEX requests_pending ON requests(state, due_at, created_at);

CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    verdict TEXT NOT NULL,
    inputs TEXT NOT NULL,
    reason TEXT,
    at TEXT NOT NULL,
    origin TEXT NOT NULL,
    automatic INTEGER NOT NULL DEFAULT 0,
    UNIQUE (request_id, actor)
);

CREATE TABLE work (
    execution_id TEXT PRIMARY KEY,
    ready_at TEXT NOT NULL,
    gen INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until TEXT
);
CREATE INDEX work_ready ON work(ready_at);

CREATE TABLE timers (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    request_id TEXT NOT NULL,
    due_at TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    done_at TEXT,
    UNIQUE (kind, request_id, due_at)
);
CREATE INDEX timers_due ON timers(done_at, due_at);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    event TEXT NOT NULL,
    request_id TEXT,
    namespace TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at TEXT NOT NULL,
    lease_until TEXT,
    done_at TEXT,
    error TEXT
);
CREATE INDEX outbox_due ON outbox(done_at, next_at);

CREATE TABLE kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
);

CREATE TABLE idempotency (
    actor TEXT NOT NULL,
    key TEXT NOT NULL,
    request_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (actor, key, request_id)
);

CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    namespace TEXT,
    flow_id TEXT,
    execution_id TEXT,
    request_id TEXT,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_by_actor ON audit(actor, seq);
CREATE INDEX audit_by_action ON audit(action, at);
CREATE INDEX audit_by_namespace ON audit(namespace, seq);
CREATE INDEX audit_by_request ON audit(request_id);
CREATE INDEX audit_by_execution ON audit(execution_id);
CREATE INDEX audit_by_at ON audit(at);
""",
    # 2: full-text search over the audit trail (engine.audit.search). External content: the
    # index holds only tokens; rows are read from `audit` by seq. A trigger's inner `;` never
    # ends a line because migrations are split into statements at ";\n".
    2: """
CREATE VIRTUAL TABLE audit_fts USING fts5(action, actor, namespace, flow_id, execution_id, request_id, data,
    content='audit', content_rowid='seq', tokenize='unicode61');
CREATE TRIGGER audit_fts_insert AFTER INSERT ON audit BEGIN
    INSERT INTO audit_fts(rowid, action, actor, namespace, flow_id, execution_id, request_id, data)
    VALUES (new.seq, new.action, new.actor, new.namespace, new.flow_id, new.execution_id, new.request_id,
            new.data); END;
INSERT INTO audit_fts(audit_fts) VALUES('rebuild');
DROP INDEX IF EXISTS audit_by_action;
CREATE INDEX audit_by_action ON audit(action, seq);
CREATE INDEX audit_by_flow ON audit(flow_id, seq);
""",
    # 3: bearer tokens for `signoff serve` (engine.tokens). Only a SHA-256 of the secret part
    # is stored; the token itself is shown once, when it is issued.
    3: """
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    name TEXT,
    hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at TEXT,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX tokens_by_user ON tokens(user, created_at);
""",
    # 4 (performance): the full-text index is fed once per transaction instead of by a trigger
    # per event. FTS5 flushes its pending terms at every statement or savepoint boundary, so
    # the trigger wrote one tiny index segment per event (a bulk decide: one per decision,
    # ~60-100 us each); engine.audit.log.append_event now notes what a transaction appended
    # and engine.store.db indexes it in one INSERT ... SELECT just before COMMIT, in the same
    # transaction (the index never lags what is committed). Same content, same tokens.
    # Also: the request index leaves out events without a request (every start writes one),
    # and timers are found by request (each decision closes its request's timers).
    4: """
DROP TRIGGER IF EXISTS audit_fts_insert;
DROP INDEX IF EXISTS audit_by_request;
CREATE INDEX audit_by_request ON audit(request_id) WHERE request_id IS NOT NULL;
CREATE INDEX timers_by_request ON timers(request_id);
""",
    # 5: how a task ends after its after-decision block (a deny with denyBehavior WARN/FAIL, an
    # expiry with expireBehavior WARN) is an explicit column, ``task_runs.ends_as`` (WARNING or
    # FAILED; NULL otherwise), instead of a "WARN:" prefix on ``error``. Runs stored before
    # are converted: a RUNNING run with an error is in that block; its prefix said which.
    5: """
ALTER TABLE task_runs ADD COLUMN ends_as TEXT;
UPDATE task_runs SET ends_as = 'WARNING', error = substr(error, 6)
    WHERE state = 'RUNNING' AND error LIKE 'WARN:%';
UPDATE task_runs SET ends_as = 'FAILED'
    WHERE state = 'RUNNING' AND error IS NOT NULL AND ends_as IS NULL;
""",
    # 6: flow-level `outputs` (engine.runtime.flow_outputs), rendered when an execution ends.
    6: """
ALTER TABLE executions ADD COLUMN outputs TEXT;
""",
    # 7: restart and replay (engine.runtime.rerun). `original_id`: the execution a replay
    # copied (Kestra's execution.originalId); `origin`: JSON saying what started it when that
    # was not a person's start (a replay, a trigger), also the source of `trigger.*` variables.
    7: """
ALTER TABLE executions ADD COLUMN original_id TEXT;
ALTER TABLE executions ADD COLUMN origin TEXT;
""",
    # 8: triggers (engine.triggers). One row per flow trigger that has fired, is scheduled or
    # was disabled by an operator: a Schedule's next due time (advanced with a compare-and-set,
    # so one process fires each due time), the last firing, and the operator's switch.
    8: """
CREATE TABLE triggers (
    namespace TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    trigger_id TEXT NOT NULL,
    next_at TEXT,
    last_at TEXT,
    last_date TEXT,
    last_execution_id TEXT,
    disabled INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, flow_id, trigger_id)
);
CREATE INDEX triggers_due ON triggers(next_at);
""",
    # 9: flows over the API (engine.flows.api_flows). The text of every revision is already in
    # flow_revisions; this says which revision is current for a flow managed through the API,
    # and whether it was deleted (executions keep their revision either way).
    9: """
CREATE TABLE api_flows (
    namespace TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    deleted_at TEXT,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (namespace, flow_id)
);
""",
    # 10 (performance, `signoff stats`): covering indexes for the window queries. Requests by
    # flow then creation time (each flow's window is one range, and grouping needs no sort);
    # requests by decision time (closed per day); decisions by time (per approver and day).
    10: """
CREATE INDEX requests_by_flow ON requests(namespace, flow_id, created_at, state, decided_at);
CREATE INDEX requests_by_decided ON requests(decided_at, namespace);
CREATE INDEX decisions_by_at ON decisions(at, automatic, actor, request_id, verdict);
""",
    # 11: signed decisions and signed audit checkpoints (engine.signing). People's SSH public
    # keys, append-only with dated revocation; nonces the server issues for key registration
    # and decision statements; a decision's signed statement and signature; the engine's
    # signed checkpoints of the audit chain head.
    11: """
CREATE TABLE signing_keys (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    key_type TEXT NOT NULL,
    public_key TEXT NOT NULL,
    comment TEXT,
    added_at TEXT NOT NULL,
    added_by TEXT NOT NULL,
    proof TEXT NOT NULL,
    revoked_at TEXT,
    revoked_by TEXT
);
CREATE INDEX signing_keys_by_owner ON signing_keys(owner, fingerprint);
CREATE INDEX signing_keys_by_fingerprint ON signing_keys(fingerprint);

CREATE TABLE signing_nonces (
    nonce TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    purpose TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX signing_nonces_by_expiry ON signing_nonces(expires_at);

CREATE TABLE audit_checkpoints (
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    at TEXT NOT NULL,
    statement TEXT NOT NULL,
    signature TEXT NOT NULL,
    fingerprint TEXT NOT NULL
);

ALTER TABLE decisions ADD COLUMN statement TEXT;
ALTER TABLE decisions ADD COLUMN signature TEXT;
ALTER TABLE decisions ADD COLUMN key_fingerprint TEXT;
""",
    # 12: one signature over a whole bulk decision (engine.signing.statement BATCH_TYPE): the
    # signed statement lists every item with its own context hash and is stored once; each
    # decision (and its audit event) names it by SHA-256.
    12: """
CREATE TABLE signed_batches (
    sha256 TEXT PRIMARY KEY,
    statement TEXT NOT NULL,
    signature TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    signer TEXT NOT NULL,
    created_at TEXT NOT NULL
);

ALTER TABLE decisions ADD COLUMN batch_sha256 TEXT;
""",
    # 13: state that lived in one process, shared by every replica on one database
    # (README "High availability"): the failed-authentication throttle (engine.server.throttle;
    # ``recent`` holds the times of a client's latest failures, ``unaudited`` those not yet in
    # the audit), uploaded FILE inputs by their SHA-256 (engine.inputs.files), and the index
    # that counts a flow's running executions for its concurrency limit.
    13: """
CREATE TABLE auth_failures (
    client TEXT PRIMARY KEY,
    recent TEXT NOT NULL,
    seen REAL NOT NULL,
    last_audit REAL,
    unaudited INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    address TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    extra TEXT NOT NULL
);

CREATE INDEX auth_failures_unaudited ON auth_failures(unaudited, last_audit);

CREATE INDEX auth_failures_seen ON auth_failures(seen);

CREATE TABLE input_files (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    content BLOB NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX executions_by_flow_state ON executions(namespace, flow_id, state);
""",
    # 14: process heartbeats (engine.runtime.heartbeat): a work lease whose owner's process
    # stopped beating for longer than its bound is free at once, on any host. Times are the
    # database's clock in seconds since the epoch.
    14: """
CREATE TABLE heartbeats (
    process TEXT PRIMARY KEY,
    beat_at REAL NOT NULL,
    dead_after REAL NOT NULL
);
""",
    # 15 (performance, `signoff stats`): what the percentiles sort, stored when it happens
    # instead of computed per query: per request the seconds from creation to closing
    # (engine.approvals.close) and how often it was escalated (engine.runtime.timers), per
    # decision the seconds from the request's creation (engine.approvals.decide). The history
    # is filled here (whole seconds through julianday, exact; microseconds from the text). The
    # indexes (wider rather than more, to keep writes cheap): each flow's and each approver's
    # window is one range of a covering index; closings by time carry the creation time (the
    # backlog at a date); the pending index carries the flow (the backlog now per flow).
    15: """
ALTER TABLE requests ADD COLUMN decision_s REAL;
ALTER TABLE requests ADD COLUMN escalations INTEGER NOT NULL DEFAULT 0;
ALTER TABLE decisions ADD COLUMN response_s REAL;
UPDATE requests SET decision_s =
    round((julianday(substr(decided_at, 1, 19)) - julianday(substr(created_at, 1, 19))) * 86400.0)
    + (CAST(substr(decided_at, 21, 6) AS INTEGER) - CAST(substr(created_at, 21, 6) AS INTEGER)) / 1000000.0
    WHERE decided_at IS NOT NULL;
UPDATE requests SET escalations = (SELECT count(*) FROM audit a WHERE a.request_id = requests.id
    AND a.action = 'request.escalated') WHERE id IN (SELECT request_id FROM audit WHERE action = 'request.escalated');
UPDATE decisions SET response_s = (SELECT
    round((julianday(substr(decisions.at, 1, 19)) - julianday(substr(r.created_at, 1, 19))) * 86400.0)
    + (CAST(substr(decisions.at, 21, 6) AS INTEGER) - CAST(substr(r.created_at, 21, 6) AS INTEGER)) / 1000000.0
    FROM requests r WHERE r.id = decisions.request_id);
DROP INDEX requests_by_flow;
CREATE INDEX requests_by_flow ON requests(namespace, flow_id, created_at, state, decision_s, escalations);
DROP INDEX requests_by_decided;
CREATE INDEX requests_by_decided ON requests(decided_at, namespace, created_at);
DROP INDEX requests_pending;
CREATE INDEX requests_pending ON requests(state, due_at, created_at, namespace, flow_id);
CREATE INDEX decisions_by_actor ON decisions(actor, automatic, at, response_s, verdict);
""",
    # 16 (performance): SQLite's full-text index of the audit trail is fed behind the writes
    # instead of at each COMMIT (engine.audit.fulltext_feed): it holds exactly the events up to
    # ``audit_fts_through.seq``, and a search first indexes those after it. Until now every
    # commit fed the index, so it is complete up to the newest event. (PostgreSQL gets the
    # same table in 17, when its words leave the audit rows.)
    16: """
CREATE TABLE audit_fts_through (seq INTEGER NOT NULL);
INSERT INTO audit_fts_through(seq) SELECT coalesce(max(seq), 0) FROM audit;
""",
    # 17 (performance): PostgreSQL's full-text column moves out of the audit rows into its own
    # table, fed behind the writes as SQLite's index is since 16 (engine.store.pg_schema).
    # Nothing changes on SQLite.
    17: "SELECT 1",
}
