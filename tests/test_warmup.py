"""A server imports at startup what its requests would import on first use (engine.server.warmup)."""
from __future__ import annotations

import subprocess
import sys

from signoff.engine.server.warmup import MODULES
from tests.support import REPO


def test_preload_imports_every_module_a_request_would() -> None:
    code = ("import sys\nfrom signoff.engine.server.warmup import MODULES, preload\n"
            "before = [m for m in MODULES if m in sys.modules]\npreload()\n"
            "print(before, [m for m in MODULES if m not in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    before, missing = result.stdout.strip().split("] [")
    assert "cryptography" not in before  # (not imported by the warm-up module itself)
    assert missing == "]"
    assert "cryptography.hazmat.primitives.serialization" in MODULES
