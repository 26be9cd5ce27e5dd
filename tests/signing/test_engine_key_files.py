"""The engine key is made once per data directory, also when a server's threads (the request
threads and the background runner) ask for it at the same moment: each reads a whole key."""
from __future__ import annotations

import threading
from pathlib import Path

from signoff.engine.signing.checkpoints import KEY_FILE, load_engine_key


def test_threads_asking_at_once_all_read_the_one_key(tmp_path: Path) -> None:
    for attempt in range(15):
        data_dir = tmp_path / f"d{attempt}"
        data_dir.mkdir()
        start = threading.Barrier(8)
        found: list[str] = []
        errors: list[BaseException] = []

        def ask(data_dir: Path = data_dir, start: threading.Barrier = start, found: list[str] = found,
                errors: list[BaseException] = errors) -> None:
            start.wait()
            try:
                key = load_engine_key(data_dir, create=True)
                assert key is not None
                found.append(key.public_key.fingerprint)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(found) == 8 and len(set(found)) == 1
        # only the key and its public half are left: no partial files
        assert sorted(p.name for p in data_dir.iterdir()) == [KEY_FILE, KEY_FILE + ".pub"]
