"""An alert in plain words, for a terminal or a chat message (:func:`render_text`).

The notifier sends this text to Slack-style webhooks, and ``mentions demo`` prints it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, timedelta
from typing import Any, Final

from pipeline.stages.alerts.record import (
    CRISIS,
    OPENED,
    RESOLVED,
    UPDATED,
    VOLUME_SPIKE,
    Alert,
)

_VERBS: Final = {OPENED: "OPENED", UPDATED: "UPDATE", RESOLVED: "RESOLVED"}


def _count(n: float) -> str:
    """``1234`` -> ``"1,234"``; ``1.2e6`` -> ``"1.2M"`` (people read magnitudes, not digits)."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 100_000:
        return f"{n / 1000:.0f}k"
    return f"{round(n):,}"


def _duration(span: timedelta) -> str:
    minutes = round(span.total_seconds() / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


def _expected(value: float) -> str:
    return f"~{value:.1f}" if value < 10 else f"~{round(value):,}"


def render_text(alert: Alert | Mapping[str, Any]) -> str:
    """A plain-words, multi-line rendering of an alert for a terminal or a chat message.

    The first line says what happened, to whom and how bad, against the baseline::

        CRISIS OPENED for Acme Mobile (critical): 230 negative mentions in 5 min vs ~12
        expected; negative share 68% vs ~15% usual; 340 mentions in all vs ~80 expected
    """
    if not isinstance(alert, Alert):
        alert = Alert.from_dict(alert)
    kind = "CRISIS" if alert.kind == CRISIS else "VOLUME SPIKE"
    severity = alert.severity.label
    if alert.previous_severity is not None:
        severity += f", up from {alert.previous_severity.label}"
    if alert.previous_kind == VOLUME_SPIKE:
        severity += ", was a volume spike"
    span = _duration(alert.window_end - alert.window_start)
    head = f"{kind} {_VERBS.get(alert.status, alert.status.upper())} for {alert.brand_name} " \
           f"({severity})"
    if alert.status == RESOLVED:
        lasted = _duration(alert.window_end - alert.started_at)
        peak = alert.peak
        what = "negative mentions" if alert.kind == CRISIS else "mentions"
        total = alert.totals.get("negative" if alert.kind == CRISIS else "volume", 0)
        first = f"{head}: calm again after {lasted}; {_count(total)} {what} over " \
                f"{alert.totals.get('windows', 0)} windows"
        if peak:
            peak_value = peak["negative"] if alert.kind == CRISIS else peak["volume"]
            peak_expected = peak["expected_negative"] if alert.kind == CRISIS \
                else peak["expected_volume"]
            first += f", peak {_count(peak_value)} in {span} vs " \
                     f"{_expected(float(peak_expected))} expected"
    elif alert.kind == CRISIS:
        first = (
            f"{head}: {_count(alert.negative)} negative mentions in {span} vs "
            f"{_expected(alert.expected_negative)} expected; negative share "
            f"{alert.negative_share:.0%} vs ~{alert.expected_negative_share:.0%} usual; "
            f"{_count(alert.volume)} mentions in all vs {_expected(alert.expected_volume)} "
            "expected"
        )
    else:
        first = (
            f"{head}: {_count(alert.volume)} mentions in {span} vs "
            f"{_expected(alert.expected_volume)} expected; negative share "
            f"{alert.negative_share:.0%} vs ~{alert.expected_negative_share:.0%} usual"
        )
    started = alert.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    window = (f"{alert.window_start.astimezone(UTC):%H:%M}-"
              f"{alert.window_end.astimezone(UTC):%H:%M} UTC")
    lines = [first, f"  started {started}; window {window}; incident {alert.incident_id} "
                    f"#{alert.sequence}"]
    ctx = alert.context
    if ctx.top_terms or ctx.top_hashtags:
        terms = ", ".join(t for t, _ in ctx.top_terms) or "-"
        hashtags = ", ".join(h for h, _ in ctx.top_hashtags) or "-"
        lines.append(f"  talking about: {terms}; hashtags: {hashtags}")
    if ctx.top_voices:
        voices = []
        for voice in ctx.top_voices:
            name = f"@{voice.handle}" if voice.handle else voice.author_id
            detail = [f"{_count(voice.followers)} followers"]
            if voice.mentions != 1:
                detail.append(f"{voice.mentions} mentions")
            if voice.copies:
                detail.append(f"{_count(voice.copies)} copies")
            voices.append(f"{name} ({', '.join(detail)})")
        lines.append(f"  top voices: {'; '.join(voices)}")
    if ctx.languages:
        lines.append("  languages: " + ", ".join(f"{lang} {share:.0%}"
                                                 for lang, share in ctx.languages))
    for sample in ctx.samples:
        who = f"@{sample.handle}" if sample.handle else "someone"
        text = " ".join(sample.text.split())
        if len(text) > 140:
            text = text[:139] + "\u2026"
        link = f" {sample.url}" if sample.url else ""
        lines.append(f'  - {who}: "{text}"{link}')
    return "\n".join(lines)


__all__ = [
    "render_text",
]
