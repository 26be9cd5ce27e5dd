"""`signoff serve`: the approval service over HTTP (FastAPI on uvicorn).

- engine.server.app: ``create_app(service, single_user=...)`` - the JSON API under /api/v1
- engine.server.auth: bearer tokens -> identities; failed-authentication slowdown and audit
- engine.server.problems: RFC 9457 problem details
- engine.server.models: request/response models (the OpenAPI schema)
- engine.server.runner: the background runner (executions, timers, notifications)
- engine.server.run: ``serve(...)``, uvicorn with a graceful SIGTERM

FastAPI and uvicorn are imported only here, so the console and CLI work without them.
"""
