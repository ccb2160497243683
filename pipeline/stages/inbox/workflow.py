"""The inbox's workflow: open -> assigned -> answered | dismissed, and back to open.

:func:`transition` is the whole rule book: an item's state and one action give its next state,
or :class:`TransitionError` says why the action does not apply. Notes and forwards change no
state (they are kept in the action log); every change bumps ``version``, which is how two people
acting on one item at once are told apart (the store's optimistic check,
:mod:`pipeline.store.workflow`).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Final


class Status(enum.StrEnum):
    """Where an item stands."""

    OPEN = "open"
    ASSIGNED = "assigned"
    ANSWERED = "answered"
    DISMISSED = "dismissed"

    @property
    def pending(self) -> bool:
        """True while the item still waits for someone (open or assigned)."""
        return self in (Status.OPEN, Status.ASSIGNED)


# actions that change an item's state; "note" and "forward" are logged without changing it
STATE_ACTIONS: Final = ("assign", "unassign", "answer", "dismiss", "reopen")
ACTIONS: Final = (*STATE_ACTIONS, "note", "forward")
DISMISS_REASONS: Final = ("no_reply_needed", "spam", "not_our_brand", "handled_elsewhere",
                          "duplicate")
REPLY_MAX_CHARS: Final = 4000
NOTE_MAX_CHARS: Final = 2000


class TransitionError(ValueError):
    """An action that does not apply to an item as it stands; ``field`` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ItemState:
    """An item's workflow state; ``version`` 0 is an item nobody has acted on yet."""

    status: Status = Status.OPEN
    assignee: str | None = None
    reply: str | None = None
    dismiss_reason: str | None = None
    version: int = 0


@dataclass(frozen=True, slots=True)
class Action:
    """One thing a person does to an item, with what it needs (an assignee, a reply...)."""

    name: str
    assignee: str | None = None
    reply: str | None = None
    reason: str | None = None


def transition(state: ItemState, action: Action) -> ItemState:
    """The state ``action`` leads to from ``state`` (its version one higher).

    >>> assigned = transition(ItemState(), Action("assign", assignee="ana"))
    >>> assigned.status, assigned.assignee, assigned.version
    (<Status.ASSIGNED: 'assigned'>, 'ana', 1)
    >>> answered = transition(assigned, Action("answer", reply="Te escribimos por DM"))
    >>> answered.status, answered.assignee, answered.version
    (<Status.ANSWERED: 'answered'>, 'ana', 2)
    >>> transition(answered, Action("dismiss", reason="spam"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pipeline.stages.inbox.workflow.TransitionError: action: an answered item cannot be ...
    """
    name = action.name
    if name not in STATE_ACTIONS:
        raise TransitionError("action", f"unknown action {name!r}")
    if name == "reopen":
        if state.status.pending:
            raise TransitionError("action", f"an {state.status} item is not closed")
        return _next(state, Status.ASSIGNED if state.assignee else Status.OPEN,
                     reply=None, dismiss_reason=None)
    if not state.status.pending:
        raise TransitionError("action", f"an {state.status} item cannot be {_done(name)}; "
                              "reopen it first")
    if name == "assign":
        assignee = (action.assignee or "").strip()
        if not assignee:
            raise TransitionError("assignee", "say who takes it")
        return _next(state, Status.ASSIGNED, assignee=assignee)
    if name == "unassign":
        return _next(state, Status.OPEN, assignee=None)
    if name == "answer":
        reply = (action.reply or "").strip()
        if not reply:
            raise TransitionError("reply", "write the reply that was sent")
        if len(reply) > REPLY_MAX_CHARS:
            raise TransitionError("reply", f"longer than {REPLY_MAX_CHARS} characters")
        return _next(state, Status.ANSWERED, reply=reply)
    if action.reason not in DISMISS_REASONS:
        raise TransitionError("reason", f"one of {', '.join(DISMISS_REASONS)}")
    return _next(state, Status.DISMISSED, dismiss_reason=action.reason)


def _next(state: ItemState, status: Status, **changes: str | None) -> ItemState:
    return dataclasses.replace(state, status=status, version=state.version + 1, **changes)


def _done(name: str) -> str:
    return {"assign": "assigned", "unassign": "unassigned", "answer": "answered",
            "dismiss": "dismissed"}[name]
