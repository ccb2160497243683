"""Recorded-shape events of the three networks, written from their public documentation.

Jetstream: the JSON of ``/subscribe`` (commit, identity and account events, ``time_us`` in
unix microseconds). Mastodon: a Status entity as the streaming API's ``update`` event
carries it. RSS 2.0 and Atom 1.0 documents as Spanish outlets publish them.
"""

from __future__ import annotations

from typing import Any

import orjson

DID_ANA = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
DID_LUIS = "did:plc:z72i7hdynmk6r22z27h6tvur"
BASE_TIME_US = 1_764_990_000_000_000  # 2025-12-06T03:00:00Z


def jetstream_post(rkey: str, text: str, *, did: str = DID_ANA, time_us: int = BASE_TIME_US,
                   langs: list[str] | None = None, reply_parent: str | None = None,
                   quote: str | None = None, created_at: str = "2025-12-06T03:00:00.123Z",
                   ) -> dict[str, Any]:
    record: dict[str, Any] = {"$type": "app.bsky.feed.post", "text": text,
                              "createdAt": created_at, "langs": langs or ["es"]}
    if reply_parent:
        ref = {"uri": reply_parent, "cid": "bafyreihmbhtwgnlgr3a2ajd4gfbdv3hdbfzw5t4gvivmuew"}
        record["reply"] = {"root": ref, "parent": ref}
    if quote:
        record["embed"] = {"$type": "app.bsky.embed.record",
                           "record": {"uri": quote, "cid": "bafyreig2fjxi3rptqdgylg7e5hmjl6"}}
    return {
        "did": did, "time_us": time_us, "kind": "commit",
        "commit": {"rev": "3lcz5qyyuhk2a", "operation": "create",
                   "collection": "app.bsky.feed.post", "rkey": rkey, "record": record,
                   "cid": "bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgzcqi"},
    }


def jetstream_identity(did: str, handle: str, time_us: int) -> dict[str, Any]:
    return {"did": did, "time_us": time_us, "kind": "identity",
            "identity": {"did": did, "handle": handle, "seq": 1409752997,
                         "time": "2025-12-06T03:00:00.000Z"}}


def jetstream_like(time_us: int) -> dict[str, Any]:
    return {"did": DID_LUIS, "time_us": time_us, "kind": "commit",
            "commit": {"rev": "3lcz5r", "operation": "create", "collection": "app.bsky.feed.like",
                       "rkey": "3lcz5rab", "record": {
                           "$type": "app.bsky.feed.like", "createdAt": "2025-12-06T03:00:01Z",
                           "subject": {"uri": f"at://{DID_ANA}/app.bsky.feed.post/3l",
                                       "cid": "bafyrei"}},
                       "cid": "bafyreia"}}


def jetstream_delete(rkey: str, time_us: int) -> dict[str, Any]:
    return {"did": DID_ANA, "time_us": time_us, "kind": "commit",
            "commit": {"rev": "3lcz6", "operation": "delete",
                       "collection": "app.bsky.feed.post", "rkey": rkey}}


def jetstream_account(time_us: int) -> dict[str, Any]:
    return {"did": DID_LUIS, "time_us": time_us, "kind": "account",
            "account": {"active": True, "did": DID_LUIS, "seq": 1409753013,
                        "time": "2025-12-06T03:00:02.000Z"}}


def encode(document: Any) -> bytes:
    return orjson.dumps(document)


def mastodon_status(status_id: str, html: str, *, host: str = "mastodon.social",
                    username: str = "lucia", language: str | None = "es",
                    reblog: dict[str, Any] | None = None, spoiler: str = "",
                    created_at: str = "2025-12-06T10:15:42.512Z") -> dict[str, Any]:
    return {
        "id": status_id,
        "created_at": created_at,
        "in_reply_to_id": None, "in_reply_to_account_id": None,
        "sensitive": bool(spoiler), "spoiler_text": spoiler, "visibility": "public",
        "language": language,
        "uri": f"https://{host}/users/{username}/statuses/{status_id}",
        "url": f"https://{host}/@{username}/{status_id}",
        "replies_count": 2, "reblogs_count": 5, "favourites_count": 11,
        "content": html, "reblog": reblog,
        "account": {
            "id": "109302", "username": username, "acct": username,
            "display_name": username.title(), "locked": False, "bot": False,
            "url": f"https://{host}/@{username}", "followers_count": 842,
            "following_count": 120, "statuses_count": 3310,
        },
        "media_attachments": [], "mentions": [], "tags": [{"name": "telvia",
                                                          "url": f"https://{host}/tags/telvia"}],
        "emojis": [], "card": None, "poll": None,
    }


def sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


RSS_SPANISH = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:content="http://purl.org/rss/1.0/modules/content/">
  <channel>
    <title>Diario Ejemplo - Portada</title>
    <link>https://diario.example/</link>
    <description>Noticias de \xc3\xbaltima hora</description>
    <language>es-ES</language>
    <lastBuildDate>Sat, 06 Dec 2025 10:30:00 +0100</lastBuildDate>
    <item>
      <title>Telvia sufre una ca\xc3\xadda masiva de fibra en Madrid</title>
      <link>https://diario.example/economia/2025-12-06/telvia-caida.html</link>
      <guid isPermaLink="true">https://diario.example/economia/2025-12-06/telvia-caida.html</guid>
      <dc:creator>Mar\xc3\xada Ruiz</dc:creator>
      <pubDate>Sat, 06 Dec 2025 10:12:00 +0100</pubDate>
      <description><![CDATA[<p>Miles de clientes de <b>Telvia</b>
        se quedan sin conexi\xc3\xb3n.</p>]]></description>
    </item>
    <item>
      <title>El tiempo: lluvias en el norte</title>
      <link>https://diario.example/sociedad/tiempo.html</link>
      <guid isPermaLink="false">diario-48213</guid>
      <pubDate>Sat, 06 Dec 2025 09:00:00 +0100</pubDate>
      <description>Aviso amarillo en Galicia.</description>
    </item>
  </channel>
</rss>
"""

ATOM_BLOG = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="es">
  <title>Blog de tecnolog\xc3\xada</title>
  <id>tag:blog.example,2025:feed</id>
  <updated>2025-12-06T11:00:00Z</updated>
  <entry>
    <title>Probamos el nuevo m\xc3\xb3vil de Acme Mobile</title>
    <id>tag:blog.example,2025:entry-77</id>
    <link rel="alternate" href="https://blog.example/2025/acme-review"/>
    <author><name>Pablo Gil</name></author>
    <published>2025-12-06T10:45:00Z</published>
    <updated>2025-12-06T10:50:00Z</updated>
    <content type="html">&lt;p&gt;La bater\xc3\xada dura dos d\xc3\xadas.&lt;/p&gt;</content>
  </entry>
</feed>
"""
