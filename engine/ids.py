"""Identifiers people read and type: random, URL-safe, no ambiguous characters."""
from __future__ import annotations

import os
from typing import Protocol

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def random_token(length: int) -> str:
    """``length`` random characters of the alphabet (5 random bits each)."""
    # performance: one call for all the randomness (5 bits a character, 32 letters), not one
    # secrets.choice (and urandom read) per character; os.urandom is what secrets.token_bytes
    # calls, without importing secrets -> hmac -> OpenSSL at start-up (~4 ms of the console's)
    bits = int.from_bytes(os.urandom((5 * length + 7) // 8), "big")
    return "".join([_ALPHABET[(bits >> (5 * i)) & 31] for i in range(length)])


def execution_id() -> str:
    """22 characters, like Kestra's short UUIDs (110 random bits)."""
    return random_token(22)


def request_id() -> str:
    """12 characters (60 random bits): short enough to type, collision-free in practice."""
    return "r" + random_token(12)


class Ids(Protocol):
    """Where new execution and request ids come from."""

    def execution_id(self) -> str: ...

    def request_id(self) -> str: ...


class RandomIds:
    """The default id source."""

    execution_id = staticmethod(execution_id)
    request_id = staticmethod(request_id)


class SequentialIds:
    """Predictable ids for tests and snapshots: e000000001, r000000001, ..."""

    def __init__(self) -> None:
        self._executions = 0
        self._requests = 0

    def execution_id(self) -> str:
        self._executions += 1
        return f"e{self._executions:021d}"

    def request_id(self) -> str:
        self._requests += 1
        return f"r{self._requests:012d}"
