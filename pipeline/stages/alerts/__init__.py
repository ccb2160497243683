"""Alerting core: brand window scores in, incidents and alert events out, routed to teams.

One module per responsibility, in the order the data flows:

- ``lifecycle``: :class:`BrandIncidents`, one brand's incidents (open, update, resolve;
  hysteresis, cooldown, restartable state), fed :class:`WindowObservation` and tuned by
  :class:`IncidentConfig`.
- ``context``: :class:`IncidentContext`, the mentions behind an incident in bounded memory
  (terms, hashtags, languages, voices ranked by reach, samples).
- ``topk``: :class:`TopK`, the weighted space-saving sketch the context counts with.
- ``terms``: :func:`mention_terms` and :func:`is_negative`, what a mention contributes.
- ``record``: :class:`Alert`, its kinds, statuses and :class:`Severity`, and its JSON form.
- ``render``: :func:`render_text`, an alert in plain words.
- ``routing``: :class:`RoutingRules` and :func:`load_routing_rules`, which webhooks get which
  alerts.

Import from the module that holds a name (``from pipeline.stages.alerts.record import
Alert``); this package re-exports nothing.
"""
