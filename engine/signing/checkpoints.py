"""Engine-signed checkpoints of the audit chain head (a signed tree head).

The hash chain alone proves nothing against someone who can write the database: they can
change an event and recompute every hash after it, or cut the newest events off. So the
engine signs the chain head with its own key every :data:`CHECKPOINT_EVERY` events and when
it shuts down; ``signoff audit verify`` checks that every checkpoint signed by the engine's
key still matches the chain, and that the chain still reaches the newest checkpoint, so a
rewrite or a truncation before the last checkpoint is detected without a copy of the head
kept elsewhere.

The key is an ed25519 key made on first use in the data directory (``engine-key``, mode
0600, and ``engine-key.pub``). The newest checkpoint is also written to the file
``audit-checkpoint`` beside it, so deleting checkpoint rows together with the events they
cover is detected too. Checkpoints are sshsig signatures (namespace ``signoff-checkpoint``)
over a canonical statement, so they can be checked with ``ssh-keygen -Y verify`` as well.

What this does not stop: someone who can read the engine's key file (root on the server, or
whoever runs it) can sign a rewritten chain. People's own decision signatures still hold
against them; see README, "Signed decisions".
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signoff.engine.clock import format_time
from signoff.engine.signing import sshsig
from signoff.engine.signing.statement import CHECKPOINT_NAMESPACE, canonical_text

CHECKPOINT_TYPE = "signoff.checkpoint/v1"
#: a checkpoint is signed at the first chance after this many new events
CHECKPOINT_EVERY = 1000
KEY_FILE = "engine-key"
LATEST_FILE = "audit-checkpoint"


@dataclass
class EngineKey:
    private_key: Any
    public_key: sshsig.PublicKey

    def sign(self, message: bytes) -> str:
        return sshsig.sign_with_private_key(self.private_key, message, CHECKPOINT_NAMESPACE)


def load_engine_key(data_dir: Path, *, create: bool) -> EngineKey | None:
    """The engine's key in ``data_dir``; made on first use when ``create`` (None without it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        if not create:
            return None
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
        # written whole under another name, then linked into place: a thread or process that
        # finds the file reads a complete key (with O_EXCL on the final name, a second thread
        # of a server read it empty while the first was still writing it)
        partial = path.parent / f".{KEY_FILE}.{os.getpid()}.{os.urandom(4).hex()}"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
                out.flush()
                os.fsync(out.fileno())
            os.link(partial, path)
        except FileExistsError:
            pass  # another thread or process made it first: use theirs
        else:
            public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            (path.parent / (KEY_FILE + ".pub")).write_bytes(public + b" signoff-engine\n")
        finally:
            partial.unlink(missing_ok=True)
    private = serialization.load_ssh_private_key(path.read_bytes(), None)
    line = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH).decode("ascii")
    return EngineKey(private, sshsig.parse_public_key(line))


def checkpoint_statement(seq: int, digest: str, at: str, fingerprint: str) -> str:
    return canonical_text({"engine_key": fingerprint, "hash": digest, "seq": seq, "signed_at": at,
                           "type": CHECKPOINT_TYPE})


def latest(conn: Any) -> dict[str, Any] | None:
    row = conn.execute("SELECT seq, hash, at, statement, signature, fingerprint FROM audit_checkpoints"
                       " ORDER BY seq DESC LIMIT 1").fetchone()
    return checkpoint_row(row) if row else None


def checkpoint_row(row: Any) -> dict[str, Any]:
    return {"seq": row[0], "hash": row[1], "at": row[2], "statement": row[3], "signature": row[4],
            "fingerprint": row[5]}


def write_checkpoint(engine: Any, *, every: int = CHECKPOINT_EVERY, force: bool = False) -> dict[str, Any] | None:
    """Sign the chain head when ``every`` events (any, with ``force``) were added since the last
    checkpoint; returns the new checkpoint, or None when none was due."""
    from signoff.engine.store.schema import SCHEMA_VERSION

    db = engine.db
    # performance: called after every start and decision. The newest checkpoint this process
    # saw (engine.checkpoint_seen) is at or below the real one, and the newest event it wrote
    # (db.appended_through) at or below the head: when even these two are fewer than ``every``
    # apart, none is due and nothing is read. Whoever appends the event that makes one due
    # finds it so; a process that appended nothing reads, as every process did before.
    through, seen = db.appended_through, engine.checkpoint_seen
    if not force and through and seen is not None and through - seen < every:
        return None
    # one round trip on PostgreSQL
    version, counts = db.queries([
        (db.SCHEMA_VERSION_SQL, ()),
        ("SELECT (SELECT max(seq) FROM audit), (SELECT max(seq) FROM audit_checkpoints)", ())])
    if not version or int(version[0][0]) != SCHEMA_VERSION:
        return None  # not a database this signoff may write (a newer one is never touched)
    head_seq, last = counts[0][0], counts[0][1] or 0
    engine.checkpoint_seen = max(engine.checkpoint_seen or 0, last)
    if head_seq is None:
        return None
    if head_seq <= last or (not force and head_seq - last < every):
        return None
    key = load_engine_key(engine.data_dir, create=True)
    assert key is not None
    at = format_time(engine.clock.now())
    with db.write() as tx:
        head = tx.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        if tx.execute("SELECT 1 FROM audit_checkpoints WHERE seq=?", (head[0],)).fetchone():
            return None
        text = checkpoint_statement(head[0], head[1], at, key.public_key.fingerprint)
        signature = key.sign(text.encode("utf-8"))
        # two replicas may sign the same head at once (PostgreSQL runs both transactions side by
        # side, each saw no checkpoint): the second one's insert does nothing, it is not an error
        inserted = tx.execute("INSERT INTO audit_checkpoints(seq, hash, at, statement, signature, fingerprint)"
                              " VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                              (head[0], head[1], at, text, signature, key.public_key.fingerprint)).rowcount
        if inserted == 0:
            return None
    engine.checkpoint_seen = max(engine.checkpoint_seen or 0, head[0])
    record = {"seq": head[0], "hash": head[1], "at": at, "statement": text, "signature": signature,
              "fingerprint": key.public_key.fingerprint}
    _write_latest_file(Path(engine.data_dir), record)
    return record


def _write_latest_file(data_dir: Path, record: dict[str, Any]) -> None:
    """The newest checkpoint, replaced atomically (never older than one already there)."""
    path = data_dir / LATEST_FILE
    current = read_latest_file(data_dir)
    if current is not None and int(current.get("seq", 0)) >= record["seq"]:
        return
    tmp = path.with_name(f".{LATEST_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(record, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_latest_file(data_dir: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((Path(data_dir) / LATEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def verify_checkpoints(conn: Any, data_dir: Path, head_seq: int | None) -> tuple[str | None, int | None, int,
                                                                                  dict[str, Any] | None]:
    """(problem, the event it names, checkpoints verified, the newest verified checkpoint).

    Only checkpoints signed by this engine's key count (anyone can add rows to a table; only
    the key's holder can sign)."""
    key = load_engine_key(data_dir, create=False)
    if key is None:
        return None, None, 0, None
    rows = [checkpoint_row(r) for r in conn.execute(
        "SELECT seq, hash, at, statement, signature, fingerprint FROM audit_checkpoints ORDER BY seq")]
    from_file = read_latest_file(data_dir)
    if from_file is not None and not any(r["seq"] == from_file.get("seq") for r in rows):
        rows.append(from_file)
        rows.sort(key=lambda r: int(r.get("seq") or 0))
    verified = 0
    newest: dict[str, Any] | None = None
    good_before = 0
    for cp in rows:
        if not _genuine(cp, key):
            continue
        seq, digest = int(cp["seq"]), str(cp["hash"])
        found = conn.execute("SELECT hash FROM audit WHERE seq=?", (seq,)).fetchone()
        if found is None:
            ends = f"the log ends at event {head_seq}" if head_seq else "the log is empty"
            return (f"events up to {seq} were removed: {ends}, but the engine signed a checkpoint of event {seq} "
                    f"at {cp['at']}"), (head_seq or 0) + 1, verified, newest
        if found[0] != digest:
            return (f"the chain was rewritten between event {good_before + 1} and event {seq}: event {seq}'s hash "
                    f"is not the one the engine signed in its checkpoint at {cp['at']}"), good_before + 1, verified, \
                newest
        verified += 1
        newest = cp
        good_before = seq
    return None, None, verified, newest


def _genuine(cp: dict[str, Any], key: EngineKey) -> bool:
    try:
        text = str(cp["statement"])
        sig = sshsig.verify(text.encode("utf-8"), str(cp["signature"]), CHECKPOINT_NAMESPACE)
        fields = json.loads(text)
    except (sshsig.SignatureError, KeyError, ValueError):
        return False
    return (sig.public_key.blob == key.public_key.blob and fields.get("seq") == cp.get("seq")
            and fields.get("hash") == cp.get("hash"))
