"""The inbox's page and API on the desk's session store (the offline pipeline's
``needs_reply`` on the generated firehose fills it)."""

from __future__ import annotations

import httpx


def test_the_inbox_page_shows_what_the_api_lists(desk: httpx.Client) -> None:
    listed = desk.get("/api/inbox").json()["items"]
    assert listed, "the classifier found nothing to answer in the generated firehose"
    answer = desk.get("/inbox")
    assert answer.status_code == 200 and "Bandeja" in answer.text
    assert "data-empty" not in answer.text
    assert all(f'data-id="{item["id"]}"' in answer.text for item in listed[:10])


def test_the_inbox_page_says_when_nothing_waits(desk: httpx.Client) -> None:
    answer = desk.get("/inbox", params={"brand": "no-such-brand"})
    assert answer.status_code == 200 and "data-empty" in answer.text


def test_the_api_lists_items_and_refuses_a_bad_filter(desk: httpx.Client) -> None:
    answer = desk.get("/api/inbox", params={"status": "all", "reason": "complaint"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["total"] >= len(body["items"]) > 0
    assert {item["reason"] for item in body["items"]} == {"complaint"}
    refused = desk.get("/api/inbox", params={"status": "lost"})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "status"


def test_acting_without_the_sessions_token_is_refused(desk: httpx.Client) -> None:
    answer = desk.post("/api/inbox/syn:1/actions", json={"action": "assign", "version": 0,
                                                         "assignee": "ana"})
    assert answer.status_code == 403 and answer.json()["error"]["field"] == "x-csrf-token"
    form = desk.post("/inbox/act", data={"id": "syn:1", "version": "0", "action": "assign"})
    assert form.status_code == 403


def test_an_unknown_item_is_404(desk: httpx.Client) -> None:
    assert desk.get("/api/inbox/nothing-here").status_code == 404
