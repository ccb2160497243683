from __future__ import annotations

from pipeline.stages.alerts.render import render_text
from tests.unit.stages.alerts.conftest import alert_sequence


def test_render_text_says_what_happened_in_plain_words() -> None:
    opened, resolved = alert_sequence()
    text = render_text(opened)
    first = text.splitlines()[0]
    assert first.startswith("CRISIS OPENED for Acme Mobile (critical): 230 negative mentions "
                            "in 5 min vs ~8.0 expected")
    assert "negative share 68% vs ~10% usual" in first
    assert "340 mentions in all vs ~80 expected" in first
    assert "@h_newsdesk (1.2M followers)" in text
    assert "#acmeleak" in text
    assert "languages: en 50%, es 50%" in text
    assert "https://social.example/h_newsdesk/status/1" in text
    closing = render_text(resolved).splitlines()[0]
    assert closing.startswith("CRISIS RESOLVED for Acme Mobile (critical): calm again after "
                              "10 min; 240 negative mentions over 2 windows, peak 230")
