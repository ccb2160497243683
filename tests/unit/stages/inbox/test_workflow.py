"""The inbox's transitions: every state and action."""

from __future__ import annotations

import pytest

from pipeline.stages.inbox.workflow import (
    DISMISS_REASONS,
    Action,
    ItemState,
    Status,
    TransitionError,
    transition,
)


def test_open_to_assigned_to_answered_keeps_the_reply_and_counts_versions() -> None:
    state = transition(ItemState(), Action("assign", assignee="ana"))
    state = transition(state, Action("answer", reply="  Te escribimos por DM  "))
    assert (state.status, state.assignee, state.reply, state.version) == (
        Status.ANSWERED, "ana", "Te escribimos por DM", 2)


def test_an_open_item_can_be_answered_or_dismissed_without_an_assignee() -> None:
    assert transition(ItemState(), Action("answer", reply="ok")).status is Status.ANSWERED
    dismissed = transition(ItemState(), Action("dismiss", reason="spam"))
    assert (dismissed.status, dismissed.dismiss_reason) == (Status.DISMISSED, "spam")


@pytest.mark.parametrize(("action", "field"), [
    (Action("assign", assignee=" "), "assignee"),
    (Action("answer", reply=""), "reply"),
    (Action("answer", reply="x" * 5000), "reply"),
    (Action("dismiss", reason="boring"), "reason"),
    (Action("dismiss"), "reason"),
    (Action("delete"), "action"),
])
def test_an_action_without_what_it_needs_is_refused(action: Action, field: str) -> None:
    with pytest.raises(TransitionError) as refused:
        transition(ItemState(), action)
    assert refused.value.field == field


@pytest.mark.parametrize("closed", [Status.ANSWERED, Status.DISMISSED])
def test_closed_items_take_only_reopen(closed: Status) -> None:
    state = ItemState(status=closed, assignee="ana", reply="r", dismiss_reason="spam", version=3)
    for action in (Action("assign", assignee="luis"), Action("answer", reply="again"),
                   Action("dismiss", reason=DISMISS_REASONS[0]), Action("unassign")):
        with pytest.raises(TransitionError):
            transition(state, action)
    reopened = transition(state, Action("reopen"))
    assert (reopened.status, reopened.assignee, reopened.reply, reopened.version) == (
        Status.ASSIGNED, "ana", None, 4)


def test_reopening_a_pending_item_is_refused_and_unassign_opens_it() -> None:
    with pytest.raises(TransitionError):
        transition(ItemState(), Action("reopen"))
    state = transition(transition(ItemState(), Action("assign", assignee="ana")),
                       Action("unassign"))
    assert (state.status, state.assignee) == (Status.OPEN, None)
