"""Decision journeys on the pending list: approve, deny, cancel, one request or many.

A journey takes the marked requests (or the highlighted one), asks what it must (the resume
form, a reason, a confirmation that names the count), sends the decision in slices of
``SLICE`` ids with one idempotency key (so "stop" takes effect between slices and a retried
slice is never decided twice), and then shows the outcome: a notice when everything went
through, the result screen listing every request that did not. One journey at a time.

The pending view owns the widgets; `Decisions` works through the view's public face (its
table, its request cache, :meth:`PendingView.run_blocking`) and the app's modal screens. The
plain functions at the bottom (grouping by form, the strictest comment rule, sorting outcomes)
do not need a terminal and are tested on their own.
"""
from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signoff.engine.approvals.outcome import APPROVE, DENY, Outcome, comment_mode, comment_required, not_attempted

if TYPE_CHECKING:
    from signoff.console.screens.bulk import BulkProgressScreen
    from signoff.console.screens.pending import PendingView

# The decision dialogs (console.screens.confirm, .bulk and .form_screen) are imported by the
# journeys that open them: the first screen does without them (~4 ms of the console's start-up).

#: bulk work is sent in slices this big, so "stop" takes effect quickly
SLICE = 50
#: show the progress screen from this many requests on
PROGRESS_FROM = 20

PAST_TENSE = {"approve": "Approved", "deny": "Denied", "cancel": "Cancelled"}


class Decisions:
    """The decision journeys of one pending view (see the module docstring)."""

    def __init__(self, view: PendingView) -> None:
        self.view = view
        #: a journey is running (a second one is refused with a notice)
        self.busy = False
        #: ids being decided right now: a live update that removes one of them is ours, not news
        self.in_flight: set[str] = set()

    # -- entry points (run as async workers by the view) -----------------------------------
    async def approve(self, with_form: bool) -> None:
        await self._journey("Approve", lambda ids: self._approve(ids, with_form))

    async def deny(self) -> None:
        await self._journey("Deny", self._deny)

    async def cancel(self) -> None:
        await self._journey("Cancel", self._cancel)

    def targets(self) -> list[str]:
        """The marked requests (in list order) if any, else the highlighted one."""
        table = self.view.table
        if table.marked:
            return [i for i in table.all_ids if i in table.marked]
        current = table.highlighted_id
        return [current] if current else []

    async def _journey(self, verb: str, run: Callable[[list[str]], Awaitable[None]]) -> None:
        """One journey at a time, on the targets; a failure is shown, never raised."""
        app = self.view.app
        if self.busy:
            app.notify("A decision is already in progress.", severity="warning")
            return
        ids = self.targets()
        if not ids:
            app.notify("Nothing to act on: the list is empty.", severity="warning")
            return
        self.busy = True
        try:
            await run(ids)
        except Exception as exc:  # noqa: BLE001 - shown to the operator
            app.notify(str(exc), title=f"{verb} failed", severity="error")
        finally:
            self.busy = False

    # -- what the targets are --------------------------------------------------------------
    def group_key(self, request_id: str) -> tuple[Any, ...]:
        """(namespace, flow, task): requests of one group ask for the same form."""
        row = self.view.table.row(request_id)
        data = row.data if row else {}
        return (data.get("namespace"), data.get("flow_id"), data.get("task_id"))

    async def requests_for(self, ids: list[str]) -> dict[tuple[Any, ...], dict[str, Any]]:
        """One full request per group among ``ids`` (their forms and rules), from the cache or
        read in one worker."""
        cache = self.view.cache
        reps: dict[tuple[Any, ...], str] = {}
        for request_id in ids:
            reps.setdefault(self.group_key(request_id), request_id)
        missing = [i for i in reps.values() if i not in cache]
        if missing:
            backend = self.view.backend
            fetched = await self.view.run_blocking(lambda: [backend.get_request(i) for i in missing])
            for request in fetched:
                cache.remember(request)
        return {key: cache[request_id] for key, request_id in reps.items()}

    def flows_of(self, ids: list[str]) -> list[tuple[str, int]]:
        table = self.view.table
        return Counter(row.flow if (row := table.row(i)) else "?" for i in ids).most_common()

    def confirm_text(self, verb: str, ids: list[str]) -> tuple[str, str]:
        from signoff.console.screens.confirm import flows_summary

        flows = self.flows_of(ids)
        noun = "request" if len(ids) == 1 else "requests"
        title = f"{verb} {len(ids)} {noun} in {len(flows)} flow{'s' if len(flows) != 1 else ''}"
        if len(ids) == 1:
            row = self.view.table.row(ids[0])
            body = f"{ids[0]} · {row.namespace}/{row.flow}\n{row.summary}" if row else ids[0]
        else:
            body = flows_summary(flows)
        return title, body

    # -- the journeys ----------------------------------------------------------------------
    async def _approve(self, ids: list[str], with_form: bool) -> None:
        from signoff.console.screens.confirm import (
            ConfirmScreen,
            FormGroup,
            FormGroupsScreen,
            ReasonScreen,
            flows_summary,
        )
        from signoff.console.screens.form_screen import FormScreen

        view, app = self.view, self.view.app
        requests = await self.requests_for(ids)
        groups = group_by_form(ids, lambda i: (requests.get(self.group_key(i)) or {}).get("form") or [])
        if len(groups) > 1:
            choices = [FormGroup(label=flows_summary(self.flows_of(group.ids)), ids=group.ids,
                                 fields=", ".join(f.get("id", "?") for f in group.form))
                       for group in groups]
            choice = await app.push_screen_wait(FormGroupsScreen(choices))
            if choice is not None:
                view.table.set_marks(choices[choice].ids)
                app.notify(f"Kept {len(choices[choice].ids)} marks ({choices[choice].label}); press y to approve.")
            return
        form = groups[0].form
        combined = strictest_comment_mode(comment_mode(r.get("rules")) for r in requests.values())
        values: dict[str, Any] = {}
        reason: str | None = None
        form_shown = False
        if form or with_form:
            first = ids[0]
            title, _body = self.confirm_text("Approve", ids)
            row = view.table.row(first)
            subtitle = row.summary if len(ids) == 1 and row else flows_summary(self.flows_of(ids))
            backend = view.backend
            result = await app.push_screen_wait(FormScreen(
                title, form, validate=lambda v: backend.validate(first, v), comment_mode=combined,
                subtitle=subtitle))
            if result is None:
                return
            values, reason = dict(result.values), result.reason
            form_shown = True
        if not form_shown and comment_required(combined, APPROVE):
            reason = await app.push_screen_wait(ReasonScreen("Why approve?", required=True))
            if reason is None:
                return
        if not (form_shown and len(ids) == 1):
            title, body = self.confirm_text("Approve", ids)
            if not await app.push_screen_wait(ConfirmScreen(title, body, confirm_label="Approve")):
                return
        await self.run_bulk("approve", ids, inputs=values, reason=reason)

    async def _deny(self, ids: list[str]) -> None:
        requests = await self.requests_for(ids)
        required = any(comment_required(comment_mode(r.get("rules")), DENY) for r in requests.values())
        await self._with_reason("deny", ids, required=required, confirm_label="Deny")

    async def _cancel(self, ids: list[str]) -> None:
        await self._with_reason("cancel", ids, required=False, confirm_label="Cancel requests",
                                note="; their executions are killed")

    async def _with_reason(self, verb: str, ids: list[str], *, required: bool, confirm_label: str,
                           note: str = "") -> None:
        """Deny or cancel: ask why, confirm (a danger button), then decide in bulk."""
        from signoff.console.screens.confirm import ConfirmScreen, ReasonScreen

        app = self.view.app
        title, body = self.confirm_text(verb.capitalize(), ids)
        reason = await app.push_screen_wait(ReasonScreen(f"Why {verb}? ({title.lower()}){note}", required=required))
        if reason is None:
            return
        if not await app.push_screen_wait(ConfirmScreen(title, body, confirm_label=confirm_label, danger=True)):
            return
        await self.run_bulk(verb, ids, reason=reason or None)

    async def run_bulk(self, verb: str, ids: list[str], *, inputs: dict[str, Any] | None = None,
                       reason: str | None = None) -> None:
        """Send the decision in slices (a progress screen from PROGRESS_FROM requests on, which
        can stop it between slices), then show the outcome."""
        view, app = self.view, self.view.app
        progress: BulkProgressScreen | None = None
        stop = threading.Event()
        if len(ids) >= PROGRESS_FROM:
            from signoff.console.screens.bulk import BulkProgressScreen

            progress = BulkProgressScreen(verb, len(ids))
            stop = progress.stop_requested
            app.push_screen(progress)
        self.in_flight.update(ids)
        # labels now: a live update may remove rows (decided elsewhere) before the result shows
        labels = {i: f"{row.flow}: {row.summary}" for i in ids if (row := view.table.row(i)) is not None}
        key = str(uuid.uuid4())
        backend = view.backend
        signer = getattr(app, "decision_signer", None)
        clock = getattr(app, "clock", None)

        def run() -> list[Outcome]:
            outcomes: list[Outcome] = []
            for start in range(0, len(ids), SLICE):
                if stop.is_set():
                    outcomes += not_attempted(ids[start:], "the bulk action was stopped")
                    break
                part = ids[start:start + SLICE]
                # signed in this process with the person's key when they have one (console/signing.py)
                signatures = signer.sign(part, verb, inputs=inputs, reason=reason,
                                         now=clock.now() if clock is not None else None) if signer else None
                if verb == "cancel":
                    outcomes += backend.cancel(part, reason, signatures=signatures)
                else:
                    outcomes += backend.decide(part, verb, inputs=inputs, reason=reason, idempotency_key=key,
                                               signatures=signatures)
                if progress is not None:
                    progress.post_message(progress.Advanced(len(outcomes), len(ids)))
            return outcomes

        try:
            outcomes: list[Outcome] = await view.run_blocking(run)
        finally:
            if progress is not None and progress.is_attached:
                progress.dismiss()
            self.in_flight.difference_update(ids)
        self.finish(verb, outcomes, labels)

    def finish(self, verb: str, outcomes: list[Outcome], labels: dict[str, str]) -> None:
        """Apply the outcomes to the list and say how it went."""
        from signoff.console.screens.bulk import BulkResultScreen

        view, app = self.view, self.view.app
        table = view.table
        had_marks = bool(table.marked)
        for o in outcomes:
            view.cache.forget(o.id)
        sorted_ = sort_outcomes(outcomes)
        table.remove_ids(sorted_.done + sorted_.gone)
        if had_marks:
            table.set_marks([o.id for o in sorted_.failed])
        if sorted_.partial:
            table.marked.difference_update(sorted_.partial)
            view.refresh_rows(sorted_.partial)
        view.update_status()
        if sorted_.failed:
            app.push_screen(BulkResultScreen(verb, outcomes, labels))
        else:
            past = PAST_TENSE[verb]
            extra = f" ({len(sorted_.partial)} waiting for more approvals)" if sorted_.partial else ""
            app.notify(f"{past} {len(outcomes)} request{'s' if len(outcomes) != 1 else ''}{extra}.", title=past)
        view.show_highlighted()


# -- plain helpers (no terminal needed) -----------------------------------------------------
@dataclass(frozen=True)
class FormGroupOfIds:
    """Requests that ask for the same form, in the order they came."""

    form: list[dict[str, Any]]
    ids: list[str]


def form_signature(form: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(form or []), sort_keys=True, default=str)


def group_by_form(ids: Sequence[str], form_of: Callable[[str], list[dict[str, Any]]]) -> list[FormGroupOfIds]:
    """The targets grouped by the form they ask for (one approval fills one form)."""
    groups: dict[str, FormGroupOfIds] = {}
    for request_id in ids:
        form = form_of(request_id)
        group = groups.setdefault(form_signature(form), FormGroupOfIds(form, []))
        group.ids.append(request_id)
    return list(groups.values())


def strictest_comment_mode(modes: Any) -> str:
    """The strictest commentRequired rule among the targets decides whether a reason is needed."""
    present = set(modes)
    return next((m for m in ("ALWAYS", "ON_APPROVE", "ON_DENY") if m in present), "NEVER")


@dataclass(frozen=True)
class SortedOutcomes:
    #: decided (their rows go)
    done: list[str]
    #: approved, but the quorum wants more approvals (their rows stay, refreshed)
    partial: list[str]
    #: not decided because they are no longer pending (their rows go)
    gone: list[str]
    #: everything not decided (shown on the result screen, kept marked)
    failed: list[Outcome]


def sort_outcomes(outcomes: Sequence[Outcome]) -> SortedOutcomes:
    return SortedOutcomes(
        done=[o.id for o in outcomes if o.ok and o.state != "PENDING"],
        partial=[o.id for o in outcomes if o.ok and o.state == "PENDING"],
        gone=[o.id for o in outcomes if not o.ok and o.state not in (None, "PENDING")],
        failed=[o for o in outcomes if not o.ok])
