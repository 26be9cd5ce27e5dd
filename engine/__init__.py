"""signoff's headless core: flows, inputs, expressions, executions, approvals.

Nothing in this package may import Textual or ``console``; the console and the HTTP
server are thin clients of :mod:`engine.service`.
"""
