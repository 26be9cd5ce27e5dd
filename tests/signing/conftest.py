"""Fixtures for the signed-decision tests: a real ssh-agent and keys made by ssh-keygen."""
from __future__ import annotations

import pytest

from tests.sshtools import SshAgent


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch):
    """A real ssh-agent; SSH_AUTH_SOCK points at it for this test (in-process clients and
    subprocesses started with this environment)."""
    a = SshAgent()
    monkeypatch.setenv("SSH_AUTH_SOCK", a.sock)
    try:
        yield a
    finally:
        a.close()
