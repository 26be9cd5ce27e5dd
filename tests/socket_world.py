"""The contract suite's third target: a real `signoff serve --socket` on a Unix socket, with
alice, bob and carol as three real OS accounts (tests/accounts.py).

The kernel tells the server who connects, so each person's client must connect *as that
account*. The test process is root, so each person gets a relay: a small stdlib program
running as that account (setpriv) that accepts connections on a private socket and opens
one to the server for each - as `ssh -L` would forward a socket. The server sees the
account's uid; the test drives the real `RemoteBackend` over the real Unix sockets.

Account names are unique per test process (``so<hex>a``...), while the contract speaks of
alice, bob and carol: :class:`Renamed` wraps each backend and writes the real account names
back as the contract's names in everything it answers (results, outcomes, changes, error
messages). The mapping is one-to-one, so a decision by the wrong person still shows as the
wrong person.
"""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.accounts import Account, as_user

RELAY = r"""
import asyncio, sys

listen, target = sys.argv[1], sys.argv[2]

async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()

async def handle(client_reader, client_writer):
    try:
        server_reader, server_writer = await asyncio.open_unix_connection(target)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

async def main():
    server = await asyncio.start_unix_server(handle, path=listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


class Relay:
    """Connections to ``path`` are forwarded to ``target`` by a process running as ``account``."""

    def __init__(self, account: Account, directory: Path, target: Path) -> None:
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chown(directory, account.uid, account.gid)
        self.path = directory / "relay.sock"
        self.proc = subprocess.Popen(as_user(account, [sys.executable, "-c", RELAY, str(self.path), str(target)]),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if line.strip() != "ready":
            raise RuntimeError(f"the relay for {account.name} did not start: {line}{self.proc.stdout.read()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def renamer(names: dict[str, str]) -> Callable[[Any], Any]:
    """A function writing every real name in a value as its contract name (longest first)."""
    order = sorted(names, key=len, reverse=True)

    def rename(value: Any) -> Any:
        if isinstance(value, str):
            for real in order:
                value = value.replace(real, names[real])
            return value
        if isinstance(value, dict):
            return {rename(k): rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, tuple):
            return tuple(rename(v) for v in value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.replace(value, **{f.name: rename(getattr(value, f.name))
                                                 for f in dataclasses.fields(value)})
        return value

    return rename


class Renamed:
    """A backend whose answers and errors use the contract's names (see the module docstring)."""

    def __init__(self, backend: Any, rename: Callable[[Any], Any], names: dict[str, str]) -> None:
        self._backend = backend
        self._rename = rename
        #: audit queries name people (``actor:alice``): those words become the real names
        self._query_words = {canonical: real for real, canonical in names.items()}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._backend, name)
        if not callable(attribute):
            return self._rename(attribute)
        rename = self._rename

        def call(*args: Any, **kwargs: Any) -> Any:
            if name in ("history", "export_audit") and args:
                args = (re.sub(r"\b(\w+)\b", lambda m: self._query_words.get(m.group(1), m.group(1)), args[0]),
                        *args[1:])
            if name == "follow":  # deliver renamed changes
                on_change = args[1]
                args = (args[0], lambda change: on_change(rename(change)), *args[2:])
            try:
                result = attribute(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - re-raised, renamed
                raise _renamed_error(exc, rename) from None
            if hasattr(result, "__next__"):
                return iter([rename(item) for item in result])
            return rename(result)

        return call


def _renamed_error(exc: Exception, rename: Callable[[Any], Any]) -> Exception:
    from signoff.engine.errors import InvalidInputs, SignoffError

    if isinstance(exc, InvalidInputs):
        return InvalidInputs(rename(exc.errors))
    if isinstance(exc, SignoffError):
        try:
            return type(exc)(rename(exc.message))
        except TypeError:
            return exc
    return exc


def wait_for(path: Path, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.05)
