"""The desk: the listening store's queries over HTTP, for the console and for scripts.

- :mod:`~pipeline.desk.app`: :func:`~pipeline.desk.app.build_desk`, the ASGI app (a JSON API
  over :class:`~pipeline.store.client.ListeningStore`, a CSV export, health and readiness);
- :mod:`~pipeline.desk.server`: serving it with uvicorn, in the foreground (``mentions desk``)
  or from a background thread of the worker that owns an embedded store.
"""
