"""Torture tests (issue 6): crashes, races, bad input, broken disks.

The default run is the short CI form. ``--long`` (or ``SIGNOFF_TORTURE_LONG=1``) selects the long
form: nothing is skipped in either; the long form only parametrizes larger counts (more random
kill points, more requests in the races).

Tests ask for counts through ``pytest_generate_tests``:

- a test with a ``kill_point`` argument gets one test per kill point (3 short, 20 long), each a
  seed for ``random.Random``; ``pg_kill_point`` likewise for the PostgreSQL variants of the crash
  tests (1 short, 10 long);
- a test with a ``race_size`` argument gets one test with 300 requests (short) or 1,000 (long).
"""
from __future__ import annotations

import os

import pytest

#: (short, long)
KILL_POINTS = (3, 20)
PG_KILL_POINTS = (1, 10)
#: paused executions in the PostgreSQL crash tests' template database
PG_CRASH_COUNT = 300
RACE_SIZE = (300, 1000)


def pytest_addoption(parser):
    """Registered here for ``pytest tests/torture --long``. pytest reads options only from the
    conftest files it loads at start-up, so for ``pytest tests --long`` the root tests/conftest.py
    re-exports this hook (``from tests.torture.conftest import pytest_addoption``); registering
    twice is harmless."""
    try:
        parser.addoption("--long", action="store_true", default=False,
                         help="run the long torture variants (more kill points, bigger races)")
    except ValueError:  # already registered by the root conftest
        pass


def long_mode(config) -> bool:
    try:
        if config.getoption("--long"):
            return True
    except ValueError:  # option not registered (this conftest was not an initial one)
        pass
    return os.environ.get("SIGNOFF_TORTURE_LONG", "") not in ("", "0")


def pytest_generate_tests(metafunc):
    index = 1 if long_mode(metafunc.config) else 0
    if "kill_point" in metafunc.fixturenames:
        metafunc.parametrize("kill_point", range(KILL_POINTS[index]), ids=lambda i: f"seed{i}")
    if "pg_kill_point" in metafunc.fixturenames:
        metafunc.parametrize("pg_kill_point", range(PG_KILL_POINTS[index]), ids=lambda i: f"seed{i}")
    if "race_size" in metafunc.fixturenames:
        metafunc.parametrize("race_size", [RACE_SIZE[index]], ids=lambda n: f"{n}req")


@pytest.fixture(scope="session")
def pg_crash_template(tmp_path_factory, pg_cluster):
    """The PostgreSQL crash tests' template database (tests/torture/crash_support.py,
    ``pg_template``), built once per session: (flows dir, database name, pending request ids)."""
    from tests.torture.crash_support import pg_template

    return pg_template(pg_cluster, tmp_path_factory.mktemp("crash-pg-template"), PG_CRASH_COUNT)
