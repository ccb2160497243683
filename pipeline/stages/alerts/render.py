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
    ContextSummary,
    SampleMention,
    Voice,
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
    started = alert.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    window = (f"{alert.window_start.astimezone(UTC):%H:%M}-"
              f"{alert.window_end.astimezone(UTC):%H:%M} UTC")
    lines = [_headline(alert), f"  started {started}; window {window}; incident "
                               f"{alert.incident_id} #{alert.sequence}"]
    lines.extend(_context_lines(alert.context))
    return "\n".join(lines)


def _headline(alert: Alert) -> str:
    """The first line: what happened, to whom and how bad, against the baseline."""
    kind = "CRISIS" if alert.kind == CRISIS else "VOLUME SPIKE"
    head = f"{kind} {_VERBS.get(alert.status, alert.status.upper())} for {alert.brand_name} " \
           f"({_severity_note(alert)})"
    span = _duration(alert.window_end - alert.window_start)
    if alert.status == RESOLVED:
        return _resolved_headline(alert, head, span)
    if alert.kind == CRISIS:
        return (
            f"{head}: {_count(alert.negative)} negative mentions in {span} vs "
            f"{_expected(alert.expected_negative)} expected; negative share "
            f"{alert.negative_share:.0%} vs ~{alert.expected_negative_share:.0%} usual; "
            f"{_count(alert.volume)} mentions in all vs {_expected(alert.expected_volume)} "
            "expected"
        )
    return (
        f"{head}: {_count(alert.volume)} mentions in {span} vs "
        f"{_expected(alert.expected_volume)} expected; negative share "
        f"{alert.negative_share:.0%} vs ~{alert.expected_negative_share:.0%} usual"
    )


def _severity_note(alert: Alert) -> str:
    """``critical, up from warning, was a volume spike``: the severity and what it rose from."""
    severity = alert.severity.label
    if alert.previous_severity is not None:
        severity += f", up from {alert.previous_severity.label}"
    if alert.previous_kind == VOLUME_SPIKE:
        severity += ", was a volume spike"
    return severity


def _resolved_headline(alert: Alert, head: str, span: str) -> str:
    """How long the incident lasted, its total and its peak window against the baseline."""
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
    return first


def _context_lines(context: ContextSummary) -> list[str]:
    """What people talk about, who drives it, in which languages, and a few samples."""
    lines = []
    if context.top_terms or context.top_hashtags:
        terms = ", ".join(t for t, _ in context.top_terms) or "-"
        hashtags = ", ".join(h for h, _ in context.top_hashtags) or "-"
        lines.append(f"  talking about: {terms}; hashtags: {hashtags}")
    if context.top_voices:
        lines.append(f"  top voices: {'; '.join(_voice(v) for v in context.top_voices)}")
    if context.languages:
        lines.append("  languages: " + ", ".join(f"{lang} {share:.0%}"
                                                 for lang, share in context.languages))
    lines.extend(_sample_line(sample) for sample in context.samples)
    return lines


def _voice(voice: Voice) -> str:
    """``@ann (12k followers, 3 mentions, 40 copies)``; one mention and no copies go unsaid."""
    name = f"@{voice.handle}" if voice.handle else voice.author_id
    detail = [f"{_count(voice.followers)} followers"]
    if voice.mentions != 1:
        detail.append(f"{voice.mentions} mentions")
    if voice.copies:
        detail.append(f"{_count(voice.copies)} copies")
    return f"{name} ({', '.join(detail)})"


def _sample_line(sample: SampleMention) -> str:
    """One sample on one line, its text cut to 140 characters, with its link."""
    who = f"@{sample.handle}" if sample.handle else "someone"
    text = " ".join(sample.text.split())
    if len(text) > 140:
        text = text[:139] + "\u2026"
    link = f" {sample.url}" if sample.url else ""
    return f'  - {who}: "{text}"{link}'


__all__ = [
    "render_text",
]
