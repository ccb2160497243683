"""The inbox over the listening store and the workflow database.

:class:`InboxService` answers the page and the API: the store's items in copy groups, each with
its workflow state, waiting time, SLA and urgency (:mod:`pipeline.stages.inbox.items`), filtered
and sorted; it applies people's actions (with the optimistic version check) and queues forwards
in the outbox, which :mod:`pipeline.desk.inbox.courier` delivers. Nothing here waits on a
webhook.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from pipeline.config import Settings
from pipeline.desk.inbox.filters import PAGE_ITEMS, InboxFilters
from pipeline.stages.alerts.routing import Destination, load_routing_rules
from pipeline.stages.brands import BrandRule
from pipeline.stages.inbox.forward import forward_key, incident_body, mention_body
from pipeline.stages.inbox.items import group_copies, is_overdue, urgency, waited
from pipeline.stages.inbox.rules import InboxConfig, load_inbox_config
from pipeline.stages.inbox.workflow import Action, ItemState
from pipeline.store.client import ListeningStore
from pipeline.store.inbox import InboxQuery, inbox_mentions, stored_since
from pipeline.store.workflow import StoredItem, WorkflowStore, default_db_url

log = logging.getLogger(__name__)

ROUTER_MARK: Final = "rules.stored_ms"
# how far back the forwarding rules look the first time they run
ROUTER_FIRST_LOOK: Final = timedelta(days=1)
# an item looked up by id may be as old as the store keeps anything
STORED_SPAN: Final = timedelta(days=36500)


class UnknownItem(LookupError):
    """No mention in the store needs a reply under this id."""


class UnknownDestination(LookupError):
    """The alert routing file has no destination of this name."""


@dataclass(frozen=True, slots=True)
class Listing:
    """A page of items and the counts the page's header shows."""

    items: list[dict[str, Any]]
    total: int
    counts: dict[str, int]


class InboxService:
    """The inbox's reading and acting, for one desk process."""

    def __init__(self, store: ListeningStore, workflow: WorkflowStore, config: InboxConfig,
                 destinations: Mapping[str, Destination], brands: Sequence[BrandRule]) -> None:
        self.store = store
        self.workflow = workflow
        self.config = config
        self.destinations = dict(destinations)
        self.brand_names = {rule.id: rule.name for rule in brands}
        self.own_brands = [rule.id for rule in brands if rule.kind == "brand"]

    @classmethod
    def from_settings(cls, settings: Settings, store: ListeningStore,
                      brands: Sequence[BrandRule]) -> InboxService:
        """The inbox the settings describe (its file, the routing file's destinations, DB)."""
        destinations = load_routing_rules(settings.alert_routes_file).destinations
        config = load_inbox_config(settings.inbox_file, destinations)
        data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        url = settings.inbox_db_url or default_db_url(store.location.embedded_path,
                                                      Path(data_home))
        return cls(store, WorkflowStore.open(url), config, destinations, brands)

    # -- reading ---------------------------------------------------------------------------

    def listing(self, filters: InboxFilters, now: datetime, reader: str | None) -> Listing:
        """The items the filters ask for, sorted, and counts of the whole inbox."""
        brands = [filters.brand] if filters.brand else self.own_brands
        mentions = inbox_mentions(self.store, InboxQuery(
            now - timedelta(days=filters.days), now + timedelta(days=1), brands=brands,
            reasons=[filters.reason] if filters.reason else [], lang=filters.lang))
        items = self._items(mentions, now)
        counts = {"pending": sum(item["pending"] for item in items),
                  "overdue": sum(item["overdue"] for item in items),
                  "mine": sum(item["pending"] and item["assignee"] == reader for item in items),
                  "unassigned": sum(item["status"] == "open" for item in items)}
        chosen = [item for item in items if _wanted(item, filters, reader)]
        if filters.sort == "urgency":
            chosen.sort(key=lambda item: (-item["urgency"], item["created_at"]))
        else:
            chosen.sort(key=lambda item: item["created_at"], reverse=True)
        shown = chosen[:PAGE_ITEMS]
        histories = self.workflow.histories([item["id"] for item in shown])
        for item in shown:
            item["history"] = histories.get(item["id"], [])
        return Listing(shown, len(chosen), counts)

    def item(self, mention_id: str, now: datetime) -> dict[str, Any]:
        """One item with its copies, history and forwards; :class:`UnknownItem` if none."""
        mentions = inbox_mentions(self.store, InboxQuery(
            now - STORED_SPAN, now + STORED_SPAN, ids=[mention_id]))
        if not mentions:
            raise UnknownItem(mention_id)
        found = self._items(mentions, now)[0]
        found["history"] = self.workflow.histories([found["id"]]).get(found["id"], [])
        return found

    def _items(self, mentions: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        groups = group_copies(mentions)
        stored = self.workflow.items(group.id for group in groups)
        forwards = self.workflow.forwards([group.id for group in groups])
        return [self._item(group.first, group.copies,
                           stored.get(group.id, StoredItem(ItemState())),
                           forwards.get(group.id, []), now) for group in groups]

    def _item(self, mention: Mapping[str, Any], copies: Sequence[Mapping[str, Any]],
              stored: StoredItem, forwards: list[dict[str, Any]],
              now: datetime) -> dict[str, Any]:
        state = stored.state
        brand = self.brand_of(mention)
        sla = self.config.sla(brand)
        created = datetime.fromisoformat(str(mention["created_at"]))
        waited_for = waited(created, now, stored.closed_at)
        author = mention.get("author") or {}
        scores = (mention.get("sentiment") or {}).get("scores") or {}
        reach = int(author.get("followers") or 0) + sum(
            int((copy.get("author") or {}).get("followers") or 0) for copy in copies)
        reason = mention.get("needs_reply")
        lang = str(mention.get("lang") or "und")
        return {
            "id": str(mention["id"]), "brand": brand, "reason": reason, "lang": lang,
            "created_at": created.isoformat(), "mention": dict(mention),
            "copies": [dict(copy) for copy in copies],
            "status": str(state.status), "pending": state.status.pending,
            "assignee": state.assignee, "reply": state.reply,
            "dismiss_reason": state.dismiss_reason, "version": state.version,
            "updated_by": stored.updated_by,
            "waited_s": int(waited_for.total_seconds()), "sla_s": int(sla.total_seconds()),
            "overdue": is_overdue(state.status.pending, waited_for, sla),
            "urgency": round(urgency(reason, reach, float(scores.get("negative") or 0.0),
                                     waited_for if state.status.pending else timedelta(0),
                                     sla), 2),
            "templates": [{"name": template.name,
                           "text": template.fill(str(author.get("handle") or ""),
                                                 self.brand_names.get(brand, brand))}
                          for template in self.config.templates_for(brand, reason, lang)],
            "forwards": forwards,
        }

    def brand_of(self, mention: Mapping[str, Any]) -> str:
        """The team's brand a mention is for (its first own brand, else its first)."""
        brands = list(mention.get("brands") or ())
        own = [brand for brand in brands if brand in self.own_brands]
        return (own or brands or [""])[0]

    # -- acting ----------------------------------------------------------------------------

    def act(self, mention_id: str, version: int, action: Action, actor: str,
            now: datetime) -> ItemState:
        """Apply a person's action (see :meth:`WorkflowStore.act`) to an item of the store.

        :class:`UnknownItem` when no stored mention that needs a reply has this id.
        """
        self._known(mention_id, now)
        return self.workflow.act(mention_id, version, action, actor, now)

    def note(self, mention_id: str, text: str, actor: str, now: datetime) -> None:
        """Add a note to an item of the store's log (:class:`UnknownItem` if none)."""
        self._known(mention_id, now)
        self.workflow.note(mention_id, text, actor, now)

    def _known(self, mention_id: str, now: datetime) -> None:
        if not inbox_mentions(self.store, InboxQuery(
                now - STORED_SPAN, now + STORED_SPAN, ids=[mention_id], limit=1)):
            raise UnknownItem(mention_id)

    def forward_mention(self, mention: Mapping[str, Any], destination: str, sender: str,
                        note: str, now: datetime, *, origin: str | None = None) -> bool:
        """Queue a mention for ``destination``; False when this very forward is queued already.

        A person's forwards carry a nonce (each is meant); a rule's (``origin``) do not.
        """
        target = self._destination(destination)
        key = forward_key("mention", str(mention["id"]), destination,
                          origin or f"{sender}:{secrets.token_hex(6)}")
        brand = self.brand_of(mention)
        body = mention_body(target.style, mention, key=key, sender=sender, note=note,
                            brand_name=self.brand_names.get(brand, brand))
        return self.workflow.enqueue(key, str(mention["id"]), destination, body, sender, now,
                                     log_action=True)

    def forward_incident(self, incident: Mapping[str, Any], destination: str, sender: str,
                         note: str, now: datetime) -> bool:
        """Queue an incident (its latest alert) for ``destination``."""
        target = self._destination(destination)
        subject = str(incident["incident_id"])
        key = forward_key("incident", subject, destination,
                          f"{sender}:{secrets.token_hex(6)}")
        brand = str(incident.get("brand") or "")
        body = incident_body(target.style, incident, key=key, sender=sender, note=note,
                             brand_name=self.brand_names.get(brand, brand))
        return self.workflow.enqueue(key, subject, destination, body, sender, now,
                                     log_action=False)

    def _destination(self, name: str) -> Destination:
        if name not in self.destinations:
            raise UnknownDestination(name)
        return self.destinations[name]

    def apply_rules(self, now: datetime, batch: int = 500) -> int:
        """Forward the items stored since the last look that a rule matches; how many queued.

        Each rule forwards an item once (its key has no nonce), so two desks applying the
        rules, or one re-reading after a restart, queue nothing twice.
        """
        if not self.config.forward_rules:
            return 0
        mark = self.workflow.mark(ROUTER_MARK)
        after = int(mark) if mark else int((now - ROUTER_FIRST_LOOK).timestamp() * 1000)
        mentions = stored_since(self.store, after, batch)
        queued = 0
        for mention in mentions:
            rules = self.config.rules_for(list(mention.get("brands") or ()),
                                          mention.get("needs_reply"),
                                          str(mention.get("lang") or ""),
                                          str(mention.get("text") or ""))
            for rule in rules:
                for destination in rule.to:
                    queued += self.forward_mention(mention, destination, f"rule {rule.name}",
                                                   "", now, origin=f"rule:{rule.name}")
        if mentions:
            self.workflow.set_mark(ROUTER_MARK, str(mentions[-1]["stored_at_ms"]))
        return queued


def _wanted(item: Mapping[str, Any], filters: InboxFilters, reader: str | None) -> bool:
    status = filters.status
    if status == "pending" and not item["pending"]:
        return False
    if status == "overdue" and not item["overdue"]:
        return False
    if status not in ("pending", "overdue", "all") and item["status"] != status:
        return False
    assignee = filters.assignee
    if assignee == "me":
        return item["assignee"] == reader
    if assignee == "none":
        return item["assignee"] is None
    return not assignee or item["assignee"] == assignee

