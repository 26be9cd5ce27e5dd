"""Shared pytest fixtures."""
from __future__ import annotations

import pytest

# ---------------------------------------------------------------------------------------
# Local fakes of the outside world (owner: task handlers) — `http_listener`, `smtp_listener`
# ---------------------------------------------------------------------------------------

@pytest.fixture
def http_listener():
    """A real HTTP server on 127.0.0.1 recording requests; see tests/fakes/http_listener.py."""
    from tests.fakes.http_listener import HttpListener

    with HttpListener() as listener:
        yield listener


@pytest.fixture
def smtp_listener():
    """A real SMTP server on 127.0.0.1 recording mail; see tests/fakes/smtp_listener.py."""
    from tests.fakes.smtp_listener import SmtpListener

    with SmtpListener() as listener:
        yield listener

# ---------------------------------------------------------------------------------------
# end of http_listener / smtp_listener section
# ---------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------
# A real PostgreSQL (tests/pgcluster.py): one throwaway cluster per test process, one fresh
# database per test (`pg_url`)
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_cluster():
    from tests.pgcluster import PgCluster

    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    return pg_cluster.new_database()


# `--long` (torture variants with more kill points and a bigger race) must be known to pytest
# from the start, so the option is registered here as well as in tests/torture/conftest.py.
from tests.torture.conftest import pytest_addoption  # noqa: E402,F401 - a hook pytest finds by name, after the fixtures
