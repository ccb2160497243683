"""The inbox's workflow database: optimistic versions across processes, the log, the outbox."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.stages.inbox.workflow import Action, Status
from pipeline.store.workflow import Conflict, WorkflowStore

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'inbox.sqlite'}"


def test_two_desks_on_one_database_never_overwrite_each_other(tmp_path: Path) -> None:
    first, second = WorkflowStore.open(_url(tmp_path)), WorkflowStore.open(_url(tmp_path))
    first.act("m:1", 0, Action("assign", assignee="ana"), "ana", NOW)
    with pytest.raises(Conflict) as lost:
        # luis saw version 0, before ana took it
        second.act("m:1", 0, Action("assign", assignee="luis"), "luis", NOW)
    assert (lost.value.current.assignee, lost.value.by) == ("ana", "ana")
    second.act("m:1", 1, Action("answer", reply="hecho"), "luis", NOW)
    with pytest.raises(Conflict):
        first.act("m:1", 1, Action("dismiss", reason="spam"), "ana", NOW)
    state = WorkflowStore.open(_url(tmp_path)).item("m:1").state  # a restarted desk
    assert (state.status, state.reply, state.version) == (Status.ANSWERED, "hecho", 2)


def _race(url: str, actor: str, barrier: multiprocessing.synchronize.Barrier,
          results: multiprocessing.Queue[str]) -> None:
    store = WorkflowStore.open(url)
    barrier.wait()
    try:
        store.act("m:race", 0, Action("assign", assignee=actor), actor, NOW)
        results.put(f"{actor}:won")
    except Conflict as conflict:
        results.put(f"{actor}:conflict:{conflict.current.assignee}")


def test_two_processes_acting_at_once_one_wins_the_other_is_told(tmp_path: Path) -> None:
    url = _url(tmp_path)
    WorkflowStore.open(url).close()
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    racers = [context.Process(target=_race, args=(url, actor, barrier, results))
              for actor in ("ana", "luis")]
    for racer in racers:
        racer.start()
    outcomes = sorted(results.get(timeout=60) for _ in racers)
    for racer in racers:
        racer.join(30)
    winners = [outcome for outcome in outcomes if outcome.endswith(":won")]
    assert len(winners) == 1, outcomes
    winner = winners[0].split(":")[0]
    loser = [outcome for outcome in outcomes if ":conflict:" in outcome]
    assert loser and loser[0].endswith(f":conflict:{winner}"), outcomes
    assert WorkflowStore.open(url).item("m:race").state.assignee == winner


def test_the_action_log_keeps_who_did_what_in_order(tmp_path: Path) -> None:
    store = WorkflowStore.open(_url(tmp_path))
    store.act("m:1", 0, Action("assign", assignee="ana"), "carla", NOW)
    store.note("m:1", "cliente VIP", "ana", NOW + timedelta(minutes=1))
    store.act("m:1", 1, Action("dismiss", reason="spam"), "ana", NOW + timedelta(minutes=2))
    log = store.histories(["m:1"])["m:1"]
    assert [(entry["actor"], entry["action"]) for entry in log] == [
        ("carla", "assign"), ("ana", "note"), ("ana", "dismiss")]
    assert log[1]["text"] == "cliente VIP" and log[2]["reason"] == "spam"
    assert store.item("m:1").closed_at == NOW + timedelta(minutes=2)


def test_a_forward_is_queued_once_per_key_and_leased_to_one_courier(tmp_path: Path) -> None:
    first, second = WorkflowStore.open(_url(tmp_path)), WorkflowStore.open(_url(tmp_path))
    assert first.enqueue("k1", "m:1", "care", {"text": "x"}, "rule r", NOW, log_action=True)
    assert not second.enqueue("k1", "m:1", "care", {"text": "x"}, "rule r", NOW,
                              log_action=True)
    claimed = first.claim(NOW, timedelta(seconds=30))
    assert [delivery.key for delivery in claimed] == ["k1"]
    assert second.claim(NOW, timedelta(seconds=30)) == []
    first.retry_later(claimed[0], NOW + timedelta(seconds=10), "HTTP 503")
    assert second.claim(NOW + timedelta(seconds=5), timedelta(seconds=30)) == []
    again = second.claim(NOW + timedelta(seconds=11), timedelta(seconds=30))
    assert [(d.key, d.attempts) for d in again] == [("k1", 1)]
    second.delivered(again[0], NOW + timedelta(seconds=12))
    assert first.forwards(["m:1"])["m:1"][0]["state"] == "delivered"
    assert [entry["action"] for entry in first.histories(["m:1"])["m:1"]] == ["forward"]
