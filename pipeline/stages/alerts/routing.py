"""Alert routing: which team's webhook gets which brand, kind and severity.

:class:`RoutingRules` maps brand patterns, kinds and a minimum severity to webhook
destinations (delivered by :mod:`pipeline.stages.notify`); :func:`load_routing_rules` reads
them from the YAML file a worker is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from pipeline.stages.alerts.record import KINDS, Alert, Severity


@dataclass(frozen=True, slots=True)
class Destination:
    """A webhook: a team's channel, by name.

    The URL is a secret (Slack's carry a token) and is kept out of ``repr``; ``style`` picks
    the body: ``slack`` (text and blocks) or ``json`` (the alert dict).
    """

    name: str
    url: str = field(repr=False)
    style: Literal["slack", "json"] = "slack"

    def __post_init__(self) -> None:
        if self.style not in ("slack", "json"):
            raise ValueError(f"destination {self.name}: style must be 'slack' or 'json'")
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"destination {self.name}: webhook URL must be http(s)")

    @property
    def host(self) -> str:
        """Host of the webhook, safe to log."""
        return urlsplit(self.url).netloc


@dataclass(frozen=True, slots=True)
class Route:
    """One routing rule: which alerts go to which named destinations.

    Alerts of brands matching ``brands`` (shell patterns on brand ids), of ``kinds``, at or
    above ``min_severity``.
    """

    destinations: tuple[str, ...]
    brands: tuple[str, ...] = ("*",)
    min_severity: Severity = Severity.WARNING
    kinds: tuple[str, ...] = KINDS

    def matches(self, alert: Alert) -> bool:
        """Whether this route takes ``alert``."""
        return (alert.severity >= self.min_severity and alert.kind in self.kinds
                and any(fnmatchcase(alert.brand, pattern) for pattern in self.brands))


@dataclass(frozen=True, slots=True)
class RoutingRules:
    """Which team/channel gets which brand and severity.

    Severity never drops within an incident, so a destination that got an incident's
    ``open`` also gets its updates and its ``resolved``.

    >>> rules = RoutingRules.from_config({
    ...     "destinations": {"pr": {"url": "https://hooks.example/pr"}},
    ...     "routes": [{"brands": ["acme-*"], "min_severity": "warning", "to": ["pr"]}]})
    >>> rules.routes[0].min_severity.label
    'warning'
    """

    destinations: Mapping[str, Destination]
    routes: tuple[Route, ...]

    def __post_init__(self) -> None:
        for route in self.routes:
            unknown = [name for name in route.destinations if name not in self.destinations]
            if unknown:
                raise ValueError(f"route names unknown destinations {unknown}")
            bad_kinds = [kind for kind in route.kinds if kind not in KINDS]
            if bad_kinds:
                raise ValueError(f"route names unknown alert kinds {bad_kinds}")

    def destinations_for(self, alert: Alert) -> list[Destination]:
        """Destinations of every matching route, each once, in rule order."""
        chosen: dict[str, Destination] = {}
        for route in self.routes:
            if route.matches(alert):
                for name in route.destinations:
                    chosen.setdefault(name, self.destinations[name])
        return list(chosen.values())

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RoutingRules:
        """Build from plain config (YAML or JSON).

        Example (YAML)::

            destinations: {pr: {url: "https://hooks.slack.com/...", style: slack}}
            routes:
              - {brands: ["acme-*"], min_severity: warning, kinds: [crisis], to: [pr]}
        """
        destinations = {
            name: Destination(name, str(spec["url"]), spec.get("style", "slack"))
            for name, spec in (config.get("destinations") or {}).items()
        }
        routes = tuple(
            Route(
                destinations=_names(spec.get("to", ())),
                brands=_names(spec.get("brands", ("*",))),
                min_severity=Severity.parse(spec.get("min_severity", "warning")),
                kinds=_names(spec.get("kinds", KINDS)),
            )
            for spec in (config.get("routes") or ())
        )
        return cls(destinations, routes)


NO_ROUTES: Final = RoutingRules({}, ())


class RoutingRulesError(ValueError):
    """An alert routing file that cannot be loaded; the message says which and why."""


def load_routing_rules(path: str | Path | None) -> RoutingRules:
    """Routing rules from a YAML file (:meth:`RoutingRules.from_config`); none without a path.

    An empty file routes nothing. Errors name the file, so a worker refuses to start on a
    broken routing file rather than dropping alerts later.
    """
    if path is None:
        return NO_ROUTES
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(config, Mapping):
            raise ValueError("expected a mapping with 'destinations' and 'routes'")
        return RoutingRules.from_config(config)
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError) as error:
        raise RoutingRulesError(f"{path}: bad alert routing: {error}") from error


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


__all__ = [
    "NO_ROUTES",
    "Destination",
    "Route",
    "RoutingRules",
    "RoutingRulesError",
    "load_routing_rules",
]
