"""engine.server.web_sessions: the lifetime setting and a session's end."""
from __future__ import annotations

import time

import pytest

from signoff.engine.errors import UsageError
from signoff.engine.identity import Identity
from signoff.engine.server.web_sessions import SESSION_LIFETIME, Sessions, session_lifetime


def test_lifetime_from_the_environment():
    assert session_lifetime({}) == SESSION_LIFETIME == 8 * 3600
    assert session_lifetime({"SIGNOFF_WEB_SESSION": "PT2H"}) == 7200
    for bad in ("bogus", "PT0S", "-PT1H"):
        with pytest.raises(UsageError, match="SIGNOFF_WEB_SESSION"):
            session_lifetime({"SIGNOFF_WEB_SESSION": bad})


def test_a_session_ends_after_its_lifetime_or_on_sign_out():
    sessions = Sessions(lifetime=0.2)
    sid, session = sessions.create(Identity(name="ann", groups=(), source="token"))
    other, _ = sessions.create(Identity(name="bo", groups=(), source="token"))
    assert sessions.get(sid) is session and len(session.csrf) >= 40 and sid != other
    sessions.end(other)
    assert sessions.get(other) is None and sessions.get(None) is None and sessions.get("made-up") is None
    time.sleep(0.3)
    assert sessions.get(sid) is None
