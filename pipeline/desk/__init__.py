"""The desk: the listening console and the store's queries over HTTP, for people and scripts.

- :mod:`~pipeline.desk.app`: :func:`~pipeline.desk.app.build_desk`, the ASGI app (the console,
  a JSON API over :class:`~pipeline.store.client.ListeningStore`, a CSV export, health and
  readiness);
- :mod:`~pipeline.desk.console`: the console's pages, :mod:`~pipeline.desk.i18n` their words
  and formats;
- :mod:`~pipeline.desk.security`, :mod:`~pipeline.desk.users`: who may use it;
- :mod:`~pipeline.desk.server`: serving it with uvicorn, in the foreground (``mentions desk``)
  or from a background thread of the worker that owns an embedded store.
"""
