"""Opinion leaders core: who drives the conversation about a brand, and why.

Pure functions over per-author aggregates of one brand and period
(:class:`AuthorActivity`, one row of the store's leaders query, :mod:`pipeline.store.leaders`).
Influence is not followers alone: an author leads when others take up their words. Each
component is scaled ``log1p(value) / log1p(largest value among the candidates)``, so the
loudest author of the period scores 1 on it, and weighted (:data:`WEIGHTS`); an author's
score is the sum of their points (0-100), and the points are the "why" a page shows.
An audience and steady posting lead only as far as people take the author up: followers and
consistency count in proportion to the author's *uptake* (their scaled echoers or engagement,
the larger), so an account with a million followers that nobody repeats or answers (a bot, a
brand's ad account) scores on neither.

Inside voices are the brand's own accounts and its employees' handles
(:class:`InsideVoices`, glob patterns such as ``acme_*``); they are ranked apart from the
outside ones. A *rising* voice is in a group's top list now and was not in the period before.

>>> star = AuthorActivity("u1", "ana", followers=900, mentions=4, originals=4, engagement=30,
...                       copies=40, echoers=35, echo_reach=20_000, active_slices=5,
...                       negative=0, neutral=1, positive=3)
>>> bot = AuthorActivity("u2", "promo_bot", followers=2_000_000, mentions=60, originals=60,
...                      engagement=0, copies=0, echoers=0, echo_reach=0, active_slices=6,
...                      negative=0, neutral=60, positive=0)
>>> [(leader.author_id, leader.stance) for leader in rank_leaders([star, bot])]
[('u1', 'advocate'), ('u2', 'neutral')]
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

# sub-periods a period is cut into to tell a steady voice from a one-off burst
SLICES: Final = 6
# the share of the score each component can give (they add up to 1)
WEIGHTS: Final[dict[str, float]] = {
    "echoers": 0.30,      # distinct others who copied them: the conversation takes them up
    "copies": 0.15,       # how often their words were copied (retweets, near-copies)
    "echo_reach": 0.15,   # the followers of those who copied them
    "engagement": 0.10,   # likes, reposts, replies, quotes on their own mentions
    "followers": 0.10,    # their own audience
    "consistency": 0.20,  # sub-periods in which they wrote about the brand
}
# components that count only in proportion to the author's uptake (module docstring)
UPTAKE_SCALED: Final = ("followers", "consistency")
# a net sentiment (positive minus negative, over their scored mentions) this far from zero
# makes an advocate or a detractor
STANCE_MARGIN: Final = 0.25
Stance = Literal["advocate", "detractor", "neutral"]
Role = Literal["account", "employee"]


@dataclass(frozen=True, slots=True)
class AuthorActivity:
    """One author's aggregates about one brand in one period.

    ``mentions`` are the author's own (originals and copies they made), ``originals`` those
    that copy nobody; ``copies``, ``echoers`` and ``echo_reach`` count the copies others made
    of the author's mentions, the distinct authors of those copies and their followers;
    ``active_slices`` how many of the :data:`SLICES` sub-periods hold a mention of theirs.
    """

    author_id: str
    handle: str
    followers: int
    mentions: int
    originals: int
    engagement: int
    copies: int
    echoers: int
    echo_reach: int
    active_slices: int
    negative: int
    neutral: int
    positive: int

    def component(self, name: str) -> float:
        """The raw value of one of :data:`WEIGHTS`' components."""
        if name == "consistency":
            return min(self.active_slices, SLICES) / SLICES
        return float(getattr(self, name))


@dataclass(frozen=True, slots=True)
class InsideVoices:
    """A brand's own accounts and its employees' handles, as glob patterns (``*``, ``?``).

    Matching ignores case and a leading ``@``.

    >>> inside = InsideVoices(accounts=("@AcmeMobile",), employees=("*_acme",))
    >>> inside.role("acmemobile"), inside.role("lucia_acme"), inside.role("ana_3")
    ('account', 'employee', None)
    """

    accounts: tuple[str, ...] = ()
    employees: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "accounts", normalise_patterns(self.accounts))
        object.__setattr__(self, "employees", normalise_patterns(self.employees))

    def role(self, handle: str) -> Role | None:
        """``account``, ``employee`` or ``None`` (an outside voice) for a handle."""
        name = normalise_handle(handle)
        if not name:
            return None
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.accounts):
            return "account"
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.employees):
            return "employee"
        return None

    def like_patterns(self) -> list[str]:
        r"""Every pattern as a SQL ``LIKE`` pattern over the lower-cased handle.

        >>> InsideVoices(employees=("ana_*", "50%")).like_patterns()
        ['ana\\_%', '50\\%']
        """
        return [glob_to_like(pattern) for pattern in (*self.accounts, *self.employees)]


def normalise_handle(handle: str) -> str:
    """A handle as patterns see it: lower case, no leading ``@``, no spaces around."""
    return handle.strip().lstrip("@").lower()


def normalise_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    """Patterns in the form :func:`normalise_handle` gives handles, empty ones dropped."""
    return tuple(dict.fromkeys(
        name for name in (normalise_handle(pattern) for pattern in patterns) if name))


def glob_to_like(pattern: str) -> str:
    """A glob (``*`` any characters, ``?`` one) as a ``LIKE`` pattern, the rest literal."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


@dataclass(frozen=True, slots=True)
class Leader:
    """A ranked author: their aggregates, score, points per component, stance and group."""

    activity: AuthorActivity
    score: float
    points: dict[str, float]
    stance: Stance
    role: Role | None = None
    rank: int = 0
    previous_rank: int | None = None
    rising: bool = False

    @property
    def author_id(self) -> str:
        """The author's id."""
        return self.activity.author_id

    @property
    def inside(self) -> bool:
        """Whether the author speaks for the brand (its account or an employee)."""
        return self.role is not None


def stance_of(activity: AuthorActivity, margin: float = STANCE_MARGIN) -> Stance:
    """Advocate, detractor or neutral from the author's own mentions' sentiment.

    >>> stance_of(AuthorActivity("u", "", 0, 5, 5, 0, 0, 0, 0, 1, 4, 1, 0))
    'detractor'
    """
    scored = activity.negative + activity.neutral + activity.positive
    if not scored:
        return "neutral"
    net = (activity.positive - activity.negative) / scored
    if net >= margin:
        return "advocate"
    if net <= -margin:
        return "detractor"
    return "neutral"


_NAMES: Final = tuple(WEIGHTS)
_WEIGHT_VALUES: Final = tuple(WEIGHTS.values())
_UPTAKE: Final = (_NAMES.index("echoers"), _NAMES.index("engagement"))
_UPTAKE_SCALED: Final = tuple(_NAMES.index(name) for name in UPTAKE_SCALED)


def _logs(activity: AuthorActivity) -> list[float]:
    """``log1p`` of each component of :data:`WEIGHTS`, in its order."""
    return [math.log1p(activity.component(name)) for name in _NAMES]


def _scale_of(logs: Sequence[Sequence[float]]) -> list[float]:
    """Per component, the largest of ``logs`` and ``log1p(1)``."""
    return [max([math.log1p(1.0)] + [row[index] for row in logs])
            for index in range(len(_NAMES))]


def _points(logs: Sequence[float], scale: Sequence[float]) -> list[float]:
    """The author's points per component, in :data:`WEIGHTS`' order (sum: the score, <= 100).

    From the author's logs and the period's largest (:func:`_scale_of`).
    """
    scaled = [value / top for value, top in zip(logs, scale, strict=True)]
    uptake = max(scaled[_UPTAKE[0]], scaled[_UPTAKE[1]])
    for index in _UPTAKE_SCALED:
        scaled[index] *= uptake
    return [round(100 * weight * value, 2)
            for weight, value in zip(_WEIGHT_VALUES, scaled, strict=True)]


def _scored(activities: Sequence[AuthorActivity]) -> list[tuple[float, list[float],
                                                                 AuthorActivity]]:
    """Every author's score and points, best first (the order of :func:`score_authors`).

    The logs are taken once per author and no :class:`Leader` is built: the desk ranks a
    few thousand candidates per request and shows a few dozen.
    """
    logs = [_logs(activity) for activity in activities]
    scale = _scale_of(logs)
    scored = []
    for activity, values in zip(activities, logs, strict=True):
        points = _points(values, scale)
        scored.append((round(sum(points), 2), points, activity))
    scored.sort(key=lambda row: (-row[0], -row[2].echoers, row[2].author_id))
    return scored


def score_authors(activities: Sequence[AuthorActivity],
                  inside: InsideVoices | None = None) -> list[Leader]:
    """Every author scored against the others of the same period, best first, unranked."""
    inside = inside or InsideVoices()
    return [Leader(activity, score, dict(zip(_NAMES, points, strict=True)),
                   stance_of(activity), inside.role(activity.handle))
            for score, points, activity in _scored(activities)]


def rank_leaders(activities: Sequence[AuthorActivity], inside: InsideVoices | None = None,
                 *, limit: int | None = None) -> list[Leader]:
    """Authors best first, ranked from 1 within their group (inside or outside).

    ``limit`` keeps that many per group.
    """
    inside = inside or InsideVoices()
    ranked: list[Leader] = []
    counts = {True: 0, False: 0}
    for score, points, activity in _scored(activities):
        role = inside.role(activity.handle)
        group = role is not None
        if limit is not None and counts[group] >= limit:
            if counts[not group] >= limit:
                break
            continue
        counts[group] += 1
        ranked.append(Leader(activity, score, dict(zip(_NAMES, points, strict=True)),
                             stance_of(activity), role, rank=counts[group]))
    return ranked


def mark_rising(current: Sequence[Leader], previous: Sequence[Leader]) -> list[Leader]:
    """``current`` with each leader's rank in ``previous`` and whether they are new to it.

    Both lists ranked by :func:`rank_leaders` with the same limit; a leader is *rising* when
    their group's previous list did not hold them. In a group with fewer voices before than
    now (a new listening query, a gap in the data) nobody is: there was no full list to rise
    into.

    >>> def one(author_id: str) -> AuthorActivity:
    ...     return AuthorActivity(author_id, "", 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0)
    >>> now = rank_leaders([one("a"), one("b")])
    >>> [(leader.author_id, leader.previous_rank, leader.rising)
    ...  for leader in mark_rising(now, rank_leaders([one("b"), one("c")]))]
    [('a', None, True), ('b', 1, False)]
    """
    before = {(leader.inside, leader.author_id): leader.rank for leader in previous}
    sizes = {group: (sum(leader.inside == group for leader in previous),
                     sum(leader.inside == group for leader in current))
             for group in (True, False)}
    return [replace(leader, previous_rank=before.get((leader.inside, leader.author_id)),
                    rising=(leader.inside, leader.author_id) not in before
                    and sizes[leader.inside][0] >= sizes[leader.inside][1])
            for leader in current]

