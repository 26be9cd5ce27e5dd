"""Real local stand-ins for the outside world, used by handler and end-to-end tests.

* :class:`HttpListener` – a threaded HTTP server on 127.0.0.1 that records every request
  and answers with a configurable status/body per path (Slack/Teams webhooks, HR APIs...).
* :class:`SmtpListener` – a threaded SMTP server on 127.0.0.1 speaking enough RFC 5321 for
  :mod:`smtplib` (EHLO/HELO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, VRFY, QUIT)
  that records every message it accepts.

Both are context managers and are exposed as the ``http_listener`` / ``smtp_listener``
pytest fixtures in ``tests/conftest.py``.
"""
from tests.fakes.http_listener import HttpListener, RecordedRequest
from tests.fakes.smtp_listener import ReceivedMail, SmtpListener

__all__ = ["HttpListener", "RecordedRequest", "SmtpListener", "ReceivedMail"]
