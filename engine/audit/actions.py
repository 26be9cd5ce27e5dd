"""Audit actions after which a request may have entered or left the pending list.

Live views follow these (the console's poll, the server's /api/v1/events feed)."""

CHANGE_ACTIONS = ("request.created", "request.approved", "request.denied", "request.auto_approved",
                  "request.cancelled", "request.expired", "request.escalated", "request.reissued",
                  "execution.ended")
