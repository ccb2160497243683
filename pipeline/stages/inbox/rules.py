"""The inbox file: each brand's SLA, its saved answers, and the rules that forward on their own.

A YAML file (``PIPELINE_INBOX_FILE``; ``pipeline/data/inbox.example.yaml`` shows every part)::

    sla: {default_minutes: 240, brands: {acme-mobile: 60}}
    templates:
      - {brands: [acme-mobile], reason: complaint, lang: es, name: Disculpa y DM,
         text: "Hola @{handle}, lo sentimos. ¿Nos escribes por mensaje directo?"}
    forward:
      - {name: billing-es, reasons: [complaint], langs: [es], words: [factura, cobr],
         to: [customer-care-es]}

Templates may say ``{handle}`` (the author's) and ``{brand}`` (the brand's name). Forwarding
rules send to destinations of the alert routing file (``PIPELINE_ALERT_ROUTES_FILE``); a rule
matches an item of one of its brands (shell patterns), reasons and languages (any, when a list
is left out) whose text has one of its words (a word matches the words that start with it,
case and accents folded: ``cobr`` matches "cobro" and "cobrado").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Final

from pipeline.stages.inbox.items import REASONS
from pipeline.text import fold

DEFAULT_SLA: Final = timedelta(hours=4)
_WORD: Final = re.compile(r"[^\W_]+")


class InboxConfigError(ValueError):
    """An inbox file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class AnswerTemplate:
    """A saved answer for a reason and language, for some brands."""

    name: str
    reason: str
    lang: str
    text: str
    brands: tuple[str, ...] = ("*",)

    def fits(self, brand: str, reason: str | None, lang: str) -> bool:
        """True when the template answers this brand's items of this reason and language."""
        return (self.reason == reason and self.lang == lang
                and any(fnmatchcase(brand, pattern) for pattern in self.brands))

    def fill(self, handle: str, brand_name: str) -> str:
        """The template's text for one author and brand.

        >>> AnswerTemplate("dm", "complaint", "es", "Hola @{handle}, somos {brand}.").fill(
        ...     "ana", "Acme")
        'Hola @ana, somos Acme.'
        """
        return self.text.replace("{handle}", handle).replace("{brand}", brand_name)


@dataclass(frozen=True, slots=True)
class ForwardRule:
    """Items that go to teams by themselves: brands, reasons, languages and words they need."""

    name: str
    to: tuple[str, ...]
    brands: tuple[str, ...] = ("*",)
    reasons: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()
    words: tuple[str, ...] = ()

    def matches(self, brands: Sequence[str], reason: str | None, lang: str,
                text: str) -> bool:
        """True when an item of these brands, reason, language and text is this rule's.

        >>> rule = ForwardRule("billing-es", ("care",), reasons=("complaint",), langs=("es",),
        ...                    words=("factur", "cobr"))
        >>> rule.matches(["acme-mobile"], "complaint", "es", "¡Me habéis COBRADO dos veces!")
        True
        >>> rule.matches(["acme-mobile"], "question", "es", "¿Por qué me cobráis?")
        False
        """
        if self.reasons and reason not in self.reasons:
            return False
        if self.langs and lang not in self.langs:
            return False
        if not any(fnmatchcase(brand, pattern) for brand in brands for pattern in self.brands):
            return False
        if not self.words:
            return True
        tokens = _WORD.findall(fold(text))
        return any(token.startswith(word) for word in self.words for token in tokens)


@dataclass(frozen=True, slots=True)
class InboxConfig:
    """Everything the inbox file says."""

    default_sla: timedelta = DEFAULT_SLA
    sla_by_brand: Mapping[str, timedelta] = field(default_factory=dict)
    templates: tuple[AnswerTemplate, ...] = ()
    forward_rules: tuple[ForwardRule, ...] = ()

    def sla(self, brand: str) -> timedelta:
        """How long an item of ``brand`` may wait for a reply."""
        return self.sla_by_brand.get(brand, self.default_sla)

    def templates_for(self, brand: str, reason: str | None, lang: str) -> list[AnswerTemplate]:
        """The saved answers for an item, in the file's order."""
        return [template for template in self.templates if template.fits(brand, reason, lang)]

    def rules_for(self, brands: Sequence[str], reason: str | None, lang: str,
                  text: str) -> list[ForwardRule]:
        """The forwarding rules an item matches, in the file's order."""
        return [rule for rule in self.forward_rules
                if rule.matches(brands, reason, lang, text)]

    @classmethod
    def from_config(cls, config: Mapping[str, Any],
                    destinations: Iterable[str] = ()) -> InboxConfig:
        """Read the file's mapping; forwarding rules must name known ``destinations``."""
        sla = config.get("sla") or {}
        default = timedelta(minutes=_minutes(sla.get("default_minutes", 240), "default"))
        by_brand = {str(brand): timedelta(minutes=_minutes(value, str(brand)))
                    for brand, value in (sla.get("brands") or {}).items()}
        templates = tuple(_template(spec) for spec in config.get("templates") or ())
        known = set(destinations)
        rules = tuple(_rule(spec, known) for spec in config.get("forward") or ())
        return cls(default, by_brand, templates, rules)


def load_inbox_config(path: Path | None, destinations: Iterable[str] = ()) -> InboxConfig:
    """The inbox file at ``path`` (defaults when None); :class:`InboxConfigError` if unusable."""
    if path is None:
        return InboxConfig()
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(config, Mapping):
            raise ValueError("expected a mapping with sla, templates and forward")
        return InboxConfig.from_config(config, destinations)
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError) as error:
        raise InboxConfigError(f"{path}: bad inbox file: {error}") from error


def _minutes(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"sla of {what}: {value!r} is not a positive number of minutes")
    return float(value)


def _template(spec: Mapping[str, Any]) -> AnswerTemplate:
    reason = str(spec["reason"])
    if reason not in REASONS:
        raise ValueError(f"template {spec.get('name')!r}: reason must be one of {REASONS}")
    return AnswerTemplate(str(spec["name"]), reason, str(spec["lang"]), str(spec["text"]),
                          _names(spec.get("brands", ("*",))))


def _rule(spec: Mapping[str, Any], destinations: set[str]) -> ForwardRule:
    name = str(spec["name"])
    to = _names(spec["to"])
    unknown = [destination for destination in to if destination not in destinations]
    if unknown:
        raise ValueError(f"forward rule {name!r} names destinations {unknown} that the alert "
                         "routing file (PIPELINE_ALERT_ROUTES_FILE) does not have")
    reasons = _names(spec.get("reasons", ()))
    if any(reason not in REASONS for reason in reasons):
        raise ValueError(f"forward rule {name!r}: reasons must be among {REASONS}")
    words = tuple(" ".join(_WORD.findall(fold(word))) for word in _names(spec.get("words", ())))
    return ForwardRule(name, to, _names(spec.get("brands", ("*",))), reasons,
                       _names(spec.get("langs", ())), tuple(word for word in words if word))


def _names(value: str | Sequence[Any]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(str(item) for item in value)
