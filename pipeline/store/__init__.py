"""The listening store: every scored mention and crisis alert kept, on ClickHouse.

- :mod:`~pipeline.store.rows`: a scored mention as one row (pure, validated);
- :mod:`~pipeline.store.incident_rows`: a crisis alert as one row (pure, validated);
- :mod:`~pipeline.store.queries`: the typed queries and their parameter validation (pure);
- :mod:`~pipeline.store.sql`: a query as SQL (pure: a statement and bound parameters, never
  a formatted value);
- :mod:`~pipeline.store.incidents`: the incident queries, their SQL and their answers'
  shape (pure);
- :mod:`~pipeline.store.tables`: the tables' DDL and retention;
- :mod:`~pipeline.store.client`: :class:`~pipeline.store.client.ListeningStore`, the
  Python API over one ``clickhouse-connect`` client, which reaches a ClickHouse server over
  HTTP or the embedded chDB engine in-process with the same calls and the same SQL.

The sink stage (:mod:`pipeline.agents.store`) writes through it and the desk
(:mod:`pipeline.desk`) reads through it.
"""
