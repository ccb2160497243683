"""Real sources: connectors that listen to open networks and write ``mentions.raw``.

One module per network (:mod:`.bluesky`, :mod:`.mastodon`, :mod:`.rss`), each a pure mapper
from the network's event to the mention wire format plus a thin async reader; the shared
parts are the sources file (:mod:`.config`), the keyword pre-filter and HTML-to-text
(:mod:`.filtering`), and the runtime (:mod:`.runtime`): a bounded queue, a producer that
delivers at least once and only then moves the durable cursor (:mod:`.cursors`), metrics,
and backoff.
"""
