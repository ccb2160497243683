"""What a forwarded mention or incident is sent as, and the key that makes a resend harmless.

A forward goes to a destination of the alert routing file: ``slack`` destinations get
``{"text": ...}`` (Slack's incoming webhooks; Mattermost and Rocket.Chat read ``text``), ``json``
ones the whole record. Every request carries the forward's idempotency key (header
``Idempotency-Key`` and, in JSON bodies, ``idempotency_key``), so a receiver that saw it once
can drop a redelivery: delivery is at least once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

TEXT_SHOWN: Final = 600


def forward_key(kind: str, subject: str, destination: str, origin: str) -> str:
    """The idempotency key of one forward: what, where to, and who sent it (a person, a rule).

    A person forwarding the same mention to the same team twice means it (a new note, a
    reminder), so their keys carry a nonce in ``origin``; a rule's do not, so a rule forwards
    an item once however often it looks.

    >>> forward_key("mention", "x:1", "care-es", "rule:billing-es")
    'inbox/mention/x:1/care-es/rule:billing-es'
    """
    return f"inbox/{kind}/{subject}/{destination}/{origin}"


def mention_body(style: str, mention: Mapping[str, Any], *, key: str, brand_name: str,
                 sender: str, note: str) -> dict[str, Any]:
    r"""The body that forwards a mention to a ``slack`` or ``json`` destination.

    >>> mention_body("slack", {"id": "x:1", "text": "Me cobrasteis dos veces",
    ...     "author": {"handle": "ana"}, "needs_reply": "complaint", "lang": "es"},
    ...     key="k", brand_name="Acme", sender="rule billing-es", note="")["text"]
    '*Acme* · complaint · es — forwarded by rule billing-es\n@ana: Me cobrasteis dos veces'
    """
    author = mention.get("author") or {}
    if style == "json":
        return {"kind": "mention", "idempotency_key": key, "brand": brand_name,
                "forwarded_by": sender, "note": note or None, "mention": dict(mention)}
    handle = author.get("handle") or author.get("id") or "?"
    reason = mention.get("needs_reply") or "mention"
    lines = [f"*{brand_name}* · {reason} · {mention.get('lang') or '?'} — forwarded by {sender}",
             f"@{handle}: {str(mention.get('text', ''))[:TEXT_SHOWN]}"]
    if mention.get("url"):
        lines.append(str(mention["url"]))
    if note:
        lines.append(f"Note: {note}")
    return {"text": "\n".join(lines)}


def incident_body(style: str, incident: Mapping[str, Any], *, key: str, brand_name: str,
                  sender: str, note: str) -> dict[str, Any]:
    """The body that forwards an incident (its latest alert) to a destination.

    >>> incident_body("slack", {"incident_id": "acme-1", "kind": "crisis", "status": "open",
    ...     "severity": "critical", "negative": 40, "volume": 52, "window_end": "09:30",
    ...     "top_terms": [{"term": "cobertura", "count": 30}]}, key="k", brand_name="Acme",
    ...     sender="ana", note="Para PR")["text"].splitlines()[1:]
    ['40 negative of 52 mentions in the window ending 09:30; top terms: cobertura', 'Note: Para PR']
    """
    if style == "json":
        return {"kind": "incident", "idempotency_key": key, "brand": brand_name,
                "forwarded_by": sender, "note": note or None, "incident": dict(incident)}
    terms = ", ".join(str(entry.get("term")) for entry in list(incident.get("top_terms") or ())[:5])
    lines = [f"*{brand_name}* · {incident.get('kind')} {incident.get('incident_id')} "
             f"({incident.get('status')}, {incident.get('severity')}) — forwarded by {sender}",
             f"{incident.get('negative', 0)} negative of {incident.get('volume', 0)} mentions "
             f"in the window ending {incident.get('window_end')}"
             + (f"; top terms: {terms}" if terms else "")]
    if note:
        lines.append(f"Note: {note}")
    return {"text": "\n".join(line for line in lines if line)}
