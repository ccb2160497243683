"""``GET /api/themes``: a brand's themes in a period, read from the themes job's tables.

Each theme comes with its label (c-TF-IDF terms, :mod:`pipeline.stages.themes.labels`), its
mentions now and in the period before, the trend and whether it is emerging
(:mod:`pipeline.stages.themes.trends`), its sentiment mix, languages and a few sample
mentions (those nearest its centroid). Emerging themes come first. For example::

    GET /api/themes?brand=telvia&since=2026-12-05T00:00:00Z
    -> {"since": ..., "until": ..., "previous": {...}, "analysed": 812, "unassigned": 40,
        "last_run": "2026-12-06T09:00:00.123+00:00",
        "themes": [{"theme_id": 7, "label": ["factura", "cobro", "doble"], "mentions": 96,
                    "previous": 4, "change": 23.0, "emerging": true, "new": false, ...}]}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.stages.themes.labels import theme_labels
from pipeline.stages.themes.trends import emerging_first, trend
from pipeline.store.client import ListeningStore
from pipeline.store.themes import ThemeSql, ThemesQuery


def themes_report(store: ListeningStore, query: ThemesQuery) -> dict[str, Any]:
    """The brand's themes in the period (see the module's docstring)."""
    sql = ThemeSql(store.location.database, store.table)
    counts = {int(row[0]): row[1:] for row in store.query(sql.counts(query))}
    unassigned = counts.pop(0, (0, 0, 0, 0, 0))
    trends = {theme_id: trend(int(row[0]), int(row[1])) for theme_id, row in counts.items()
              if int(row[0]) > 0}
    shown = emerging_first(trends)[:query.limit]
    languages: dict[int, dict[str, int]] = {}
    for theme_id, lang, mentions in store.query(sql.languages(query)):
        languages.setdefault(int(theme_id), {})[lang or "und"] = int(mentions)
    terms: dict[int, dict[str, int]] = {}
    for theme_id, term, mentions in store.query(sql.terms(query)):
        terms.setdefault(int(theme_id), {})[term] = int(mentions)
    labels = theme_labels(terms)
    samples: dict[int, list[dict[str, Any]]] = {}
    for theme_id, mention_id, text, lang, sentiment, created_at in store.query(
            sql.samples(query)):
        samples.setdefault(int(theme_id), []).append({
            "id": mention_id, "text": text, "lang": lang or None,
            "sentiment": sentiment or None, "created_at": _iso(created_at)})
    last_run, themes_known = store.query(sql.last_run())[0]
    return {
        "brand": query.brand,
        "since": query.period.since.isoformat(), "until": query.period.until.isoformat(),
        "previous": {"since": query.period.previous().since.isoformat(),
                     "until": query.period.since.isoformat()},
        "analysed": sum(int(row[0]) for row in counts.values()) + int(unassigned[0]),
        "unassigned": int(unassigned[0]),
        "last_run": _iso(last_run) if int(themes_known) else None,
        "themes": [_theme(theme_id, trends[theme_id], counts[theme_id], labels,
                          languages, samples) for theme_id in shown],
    }


def _theme(theme_id: int, theme_trend: Any, row: tuple[Any, ...],
           labels: dict[int, list[str]], languages: dict[int, dict[str, int]],
           samples: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    by_language = languages.get(theme_id, {})
    return {
        "theme_id": theme_id,
        "label": labels.get(theme_id, []),
        "mentions": theme_trend.current,
        "previous": theme_trend.previous,
        "change": theme_trend.change,
        "rise": theme_trend.rise,
        "emerging": theme_trend.emerging,
        "new": theme_trend.new,
        "sentiment": {"negative": int(row[2]), "neutral": int(row[3]), "positive": int(row[4])},
        "languages": dict(sorted(by_language.items(), key=lambda item: (-item[1], item[0]))),
        "samples": samples.get(theme_id, []),
    }


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()
