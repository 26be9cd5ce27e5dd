"""A small client of the SSH agent protocol (draft-miller-ssh-agent): list keys, sign.

Why not ``ssh-keygen -Y sign`` per decision: a process per signature costs ~5 ms, and a bulk
decision signs thousands of statements. The agent protocol is four messages; requests are
pipelined in batches (the agent answers in order), so 10,000 signatures take about a second.
Works with forwarded agents too (``SSH_AUTH_SOCK`` of an ``ssh -A`` session).
"""
from __future__ import annotations

import os
import socket
import struct
from collections.abc import Sequence

from signoff.engine.errors import SignoffError
from signoff.engine.signing.sshsig import PublicKey, Reader, public_key_from_blob, ssh_string

REQUEST_IDENTITIES = 11
IDENTITIES_ANSWER = 12
SIGN_REQUEST = 13
SIGN_RESPONSE = 14
FAILURE = 5
RSA_SHA2_512 = 4

#: sign requests written before their answers are read (well inside a socket's buffers)
PIPELINE = 64


class AgentError(SignoffError):
    """No agent, an agent that refuses, or a broken conversation (the message says which)."""

    exit_code = 1


class Agent:
    """One connection to the agent at ``path`` (default ``$SSH_AUTH_SOCK``)."""

    def __init__(self, path: str | None = None, timeout: float = 30.0) -> None:
        where = path or os.environ.get("SSH_AUTH_SOCK")
        if not where:
            raise AgentError("no SSH agent: SSH_AUTH_SOCK is not set (start one with `eval $(ssh-agent)` and "
                             "`ssh-add`, or connect with `ssh -A`)")
        self.path = where
        try:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(where)
        except OSError as exc:
            raise AgentError(f"cannot reach the SSH agent at {where}: {exc.strerror or exc}") from None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def _recv_exact(self, n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            try:
                part = self.sock.recv(n - len(chunks))
            except OSError as exc:
                raise AgentError(f"the SSH agent stopped answering: {exc}") from None
            if not part:
                raise AgentError("the SSH agent closed the connection")
            chunks += part
        return bytes(chunks)

    def _recv(self) -> tuple[int, Reader]:
        length = struct.unpack(">I", self._recv_exact(4))[0]
        if not 1 <= length <= 256 * 1024:
            raise AgentError(f"the SSH agent sent a message of {length} bytes")
        body = self._recv_exact(length)
        return body[0], Reader(body[1:], "the agent's answer")

    def identities(self) -> list[PublicKey]:
        """The keys the agent holds (those of a type signoff does not know are left out)."""
        self._send(bytes([REQUEST_IDENTITIES]))
        kind, reader = self._recv()
        if kind != IDENTITIES_ANSWER:
            raise AgentError("the SSH agent refused to list its keys")
        keys: list[PublicKey] = []
        for _ in range(reader.uint32()):
            blob, comment = reader.string(), reader.text()
            try:
                keys.append(public_key_from_blob(blob, comment))
            except SignoffError:
                continue
        return keys

    def sign_many(self, key: PublicKey, datas: Sequence[bytes]) -> list[bytes]:
        """SSH signature blobs of each of ``datas`` by ``key`` (pipelined, answers in order)."""
        flags = RSA_SHA2_512 if key.key_type == "ssh-rsa" else 0
        prefix = bytes([SIGN_REQUEST]) + ssh_string(key.blob)
        out: list[bytes] = []
        for start in range(0, len(datas), PIPELINE):
            batch = datas[start:start + PIPELINE]
            self.sock.sendall(b"".join(
                struct.pack(">I", len(prefix) + 4 + len(d) + 4) + prefix + ssh_string(d) + struct.pack(">I", flags)
                for d in batch))
            for _ in batch:
                kind, reader = self._recv()
                if kind != SIGN_RESPONSE:
                    raise AgentError(f"the SSH agent refused to sign with {key.fingerprint} (was the key removed, "
                                     "or does it need a confirmation?)")
                out.append(reader.string())
        return out
