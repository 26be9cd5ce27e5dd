"""signoff's headless core: flows, inputs, expressions, executions, approvals.

Nothing in this package may import Textual, click or ``console``; the console and the HTTP
server are thin clients of :mod:`engine.service`. Which modules are public (what the console
may import) is listed in ``tests/import_rules.py`` (``PUBLIC_ENGINE``) and the README's
"Static checks"; ``.ci/static`` holds the console to it.
"""
