"""The inbox's workflow state, action log and outbox, in a transactional database.

Why not the listening store: ClickHouse has no compare-and-set. Two desks that append their
actions there both succeed, and "latest state wins" would silently drop one person's work; and
an embedded chDB folder opens in one process only, so a second desk could not share it anyway.
The workflow is small, row-at-a-time and needs exactly that check, so it lives in a
transactional database beside the store, through SQLAlchemy Core: SQLite by default (a file
that any number of desk processes on one machine share), PostgreSQL in production
(``PIPELINE_INBOX_DB_URL=postgresql+psycopg://...``), with the same statements.

- ``inbox_items``: an item's latest state and its ``version``. Every change is an
  ``UPDATE ... WHERE version = <the version the person saw>`` (the first one an ``INSERT`` of
  version 1): when someone else changed the item meanwhile it touches no row, and the second
  person gets :class:`Conflict` with the state that beat them, never a silent overwrite.
- ``inbox_actions``: who did what and when, appended in the same transaction as the change;
  nothing updates or deletes a row of it.
- ``inbox_outbox``: forwards waiting for delivery (:mod:`pipeline.desk.inbox.courier`), keyed
  by their idempotency key, so a forward is queued once however often it is asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from pipeline.stages.inbox.workflow import Action, ItemState, Status, transition

METADATA: Final = sa.MetaData()
ITEMS: Final = sa.Table(
    "inbox_items", METADATA,
    sa.Column("mention_id", sa.String(200), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("assignee", sa.String(64)),
    sa.Column("reply", sa.Text),
    sa.Column("dismiss_reason", sa.String(32)),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(64), nullable=False),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
)
ACTIONS: Final = sa.Table(
    "inbox_actions", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("mention_id", sa.String(200), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)
OUTBOX: Final = sa.Table(
    "inbox_outbox", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(400), nullable=False, unique=True),
    sa.Column("subject", sa.String(200), nullable=False, index=True),
    sa.Column("destination", sa.String(100), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
)
MARKS: Final = sa.Table(
    "inbox_marks", METADATA,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class Conflict(RuntimeError):
    """Someone changed the item since the version this action was based on."""

    def __init__(self, mention_id: str, current: ItemState, by: str | None) -> None:
        super().__init__(f"{mention_id} changed meanwhile (now version {current.version}, "
                         f"{current.status}{f' by {by}' if by else ''})")
        self.mention_id = mention_id
        self.current = current
        self.by = by


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item's state as stored, with who changed it last and when it was closed."""

    state: ItemState
    updated_by: str | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A forward the courier holds the lease on."""

    id: int
    key: str
    destination: str
    body: dict[str, Any]
    attempts: int


def engine_for(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite waits for other processes' writes instead of failing."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _wal(connection: Any, _: Any) -> None:
            # readers do not wait for a writer; the file is shared by every desk process
            connection.execute("PRAGMA journal_mode=WAL")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def default_db_url(store_folder: Path | None, data_home: Path) -> str:
    """SQLite next to an embedded store's folder, else ``mentions/inbox.sqlite`` in data_home.

    >>> default_db_url(Path("/var/lib/mentions/store"), Path("/home/ana/.local/share"))
    'sqlite:////var/lib/mentions/store-inbox.sqlite'
    """
    if store_folder is not None:
        path = store_folder.parent / (store_folder.name + "-inbox.sqlite")
    else:
        path = data_home / "mentions" / "inbox.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


class WorkflowStore:
    """Items' states, their action log and the outbox, over one SQLAlchemy engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        METADATA.create_all(engine)

    @classmethod
    def open(cls, url: str) -> WorkflowStore:
        """The workflow database at ``url`` (tables created when missing)."""
        return cls(engine_for(url))

    def close(self) -> None:
        """Close the engine's connections."""
        self.engine.dispose()

    # -- items -----------------------------------------------------------------------------

    def items(self, mention_ids: Iterable[str]) -> dict[str, StoredItem]:
        """The stored state of each of ``mention_ids`` that anyone acted on."""
        ids = list(dict.fromkeys(mention_ids))
        found: dict[str, StoredItem] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 500):
                rows = connection.execute(sa.select(ITEMS).where(
                    ITEMS.c.mention_id.in_(ids[start:start + 500])))
                for row in rows:
                    found[row.mention_id] = _stored(row)
        return found

    def item(self, mention_id: str) -> StoredItem:
        """One item's stored state (version 0, open, when nobody acted on it)."""
        return self.items([mention_id]).get(mention_id, StoredItem(ItemState()))

    def act(self, mention_id: str, expected_version: int, action: Action, actor: str,
            now: datetime) -> ItemState:
        """Apply ``action`` to the item at ``expected_version``; its new state.

        :class:`Conflict` when the item is no longer at that version (someone else acted),
        :class:`~pipeline.stages.inbox.workflow.TransitionError` when the action does not apply.
        """
        stored = self.item(mention_id)
        if stored.state.version != expected_version:
            raise Conflict(mention_id, stored.state, stored.updated_by)
        state = transition(stored.state, action)
        values = {"status": str(state.status), "assignee": state.assignee, "reply": state.reply,
                  "dismiss_reason": state.dismiss_reason, "version": state.version,
                  "updated_at": now, "updated_by": actor,
                  "closed_at": None if state.status.pending else now}
        detail = {key: value for key, value in dataclasses.asdict(action).items()
                  if key != "name" and value is not None}
        try:
            with self.engine.begin() as connection:
                if expected_version == 0:
                    connection.execute(sa.insert(ITEMS).values(mention_id=mention_id, **values))
                else:
                    changed = connection.execute(sa.update(ITEMS).where(
                        ITEMS.c.mention_id == mention_id,
                        ITEMS.c.version == expected_version).values(**values)).rowcount
                    if changed != 1:
                        raise _Lost
                self._log(connection, mention_id, now, actor, action.name, detail,
                          state.version)
        except (IntegrityError, _Lost):
            latest = self.item(mention_id)
            raise Conflict(mention_id, latest.state, latest.updated_by) from None
        return state

    def note(self, mention_id: str, text: str, actor: str, now: datetime) -> None:
        """Append a note to the item's log (notes never conflict: they change no state)."""
        with self.engine.begin() as connection:
            self._log(connection, mention_id, now, actor, "note", {"text": text},
                      self.item(mention_id).state.version)

    def histories(self, mention_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Each item's action log, oldest first (items nobody acted on are left out)."""
        found: dict[str, list[dict[str, Any]]] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(mention_ids), 500):
                rows = connection.execute(sa.select(ACTIONS).where(
                    ACTIONS.c.mention_id.in_(list(mention_ids[start:start + 500])),
                ).order_by(ACTIONS.c.id))
                for row in rows:
                    found.setdefault(row.mention_id, []).append({
                        "at": _utc(row.at).isoformat(), "actor": row.actor,
                        "action": row.action, "version": row.version,
                        **orjson.loads(row.detail)})
        return found

    @staticmethod
    def _log(connection: sa.Connection, mention_id: str, now: datetime, actor: str,
             action: str, detail: dict[str, Any], version: int) -> None:
        connection.execute(sa.insert(ACTIONS).values(
            mention_id=mention_id, at=now, actor=actor, action=action,
            detail=orjson.dumps(detail).decode(), version=version))

    # -- outbox ----------------------------------------------------------------------------

    def enqueue(self, key: str, subject: str, destination: str, body: dict[str, Any],
                sender: str, now: datetime, *, log_action: bool) -> bool:
        """Queue a forward; False when one with this key is queued already.

        ``log_action`` also appends a ``forward`` line to the mention's action log, in the
        same transaction.
        """
        try:
            with self.engine.begin() as connection:
                connection.execute(sa.insert(OUTBOX).values(
                    key=key, subject=subject, destination=destination,
                    body=orjson.dumps(body).decode(), state=PENDING, attempts=0,
                    next_attempt_at=now, created_at=now, created_by=sender))
                if log_action:
                    version = connection.execute(sa.select(ITEMS.c.version).where(
                        ITEMS.c.mention_id == subject)).scalar() or 0
                    self._log(connection, subject, now, sender, "forward",
                              {"destination": destination, "key": key}, version)
        except IntegrityError:
            return False
        return True

    def claim(self, now: datetime, lease: timedelta, limit: int = 20) -> list[Delivery]:
        """Forwards due now, each leased to the caller (another desk's courier skips them)."""
        free = sa.or_(OUTBOX.c.lease_until.is_(None), OUTBOX.c.lease_until < now)
        with self.engine.connect() as connection:
            due = connection.execute(sa.select(OUTBOX).where(
                OUTBOX.c.state == PENDING, OUTBOX.c.next_attempt_at <= now, free,
            ).order_by(OUTBOX.c.id).limit(limit)).all()
        claimed = []
        for row in due:
            with self.engine.begin() as connection:
                taken = connection.execute(sa.update(OUTBOX).where(
                    OUTBOX.c.id == row.id, OUTBOX.c.state == PENDING, free,
                ).values(lease_until=now + lease)).rowcount
            if taken == 1:
                claimed.append(Delivery(row.id, row.key, row.destination,
                                        orjson.loads(row.body), row.attempts))
        return claimed

    def delivered(self, delivery: Delivery, now: datetime) -> None:
        """Mark a forward delivered."""
        self._settle(delivery, state=DELIVERED, delivered_at=now, last_error=None)

    def retry_later(self, delivery: Delivery, at: datetime, error: str) -> None:
        """Put a forward back, due at ``at``."""
        self._settle(delivery, state=PENDING, next_attempt_at=at, last_error=error[:500])

    def failed(self, delivery: Delivery, error: str) -> None:
        """Give a forward up (the receiver refused it, or every attempt failed)."""
        self._settle(delivery, state=FAILED, last_error=error[:500])

    def _settle(self, delivery: Delivery, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.update(OUTBOX).where(OUTBOX.c.id == delivery.id).values(
                attempts=delivery.attempts + 1, lease_until=None, **values))

    def forwards(self, subjects: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The forwards of each subject (a mention or incident id), oldest first."""
        found: dict[str, list[dict[str, Any]]] = {}
        if not subjects:
            return found
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(OUTBOX).where(
                OUTBOX.c.subject.in_(list(subjects))).order_by(OUTBOX.c.id))
            for row in rows:
                found.setdefault(row.subject, []).append({
                    "destination": row.destination, "state": row.state, "key": row.key,
                    "attempts": row.attempts, "by": row.created_by,
                    "at": _utc(row.created_at).isoformat(), "error": row.last_error})
        return found

    # -- marks -----------------------------------------------------------------------------

    def mark(self, name: str) -> str | None:
        """A named bookmark (how far the forwarding rules have read the store)."""
        with self.engine.connect() as connection:
            value = connection.execute(sa.select(MARKS.c.value).where(
                MARKS.c.name == name)).scalar()
        return str(value) if value is not None else None

    def set_mark(self, name: str, value: str) -> None:
        """Move a bookmark."""
        try:
            with self.engine.begin() as connection:
                if connection.execute(sa.update(MARKS).where(MARKS.c.name == name).values(
                        value=value)).rowcount == 0:
                    connection.execute(sa.insert(MARKS).values(name=name, value=value))
        except IntegrityError:
            # another desk set it first; the next round moves it on
            pass


class _Lost(Exception):
    """The compare-and-set touched no row."""


def _stored(row: Any) -> StoredItem:
    state = ItemState(Status(row.status), row.assignee, row.reply, row.dismiss_reason,
                      row.version)
    return StoredItem(state, row.updated_by, _utc(row.updated_at),
                      _utc(row.closed_at) if row.closed_at else None)


def _utc(moment: datetime) -> datetime:
    # SQLite gives naive datetimes back: they were written in UTC
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
