"""Sentiment toward each brand of a mention that names several: ``sentiment_by_brand``.

One label per mention is wrong for the mentions a competitor analysis needs most: "me pasé de
Telvia a Acme y qué diferencia" is bad news for Telvia and good news for Acme. For a mention
naming two or more brands, :class:`BrandTargets` plans a few more texts for the same model
call as the mention's own text, then reads each brand's result off them:

- the text is cut into clauses (:func:`~pipeline.stages.sentiment.clauses.split_clauses`); a
  clause naming no brand joins the one before it (the first ones join the first that names
  one), so each brand's *region* is what is said next to it;
- a brand alone in its regions gets their text scored as its own segment;
- brands that share a region are told apart by a comparative cue
  (:func:`~pipeline.stages.sentiment.clauses.find_cues`): the one that comes out ahead is
  positive and the other negative, the region's scores turned that way; with no cue they keep
  the region's result (the mention's, when the region is the whole text);
- words that speak of all the brands at once ("todos iguales", "both") give each the mention's
  result;
- a neutral reading is settled against the others (:func:`settle_neutral`): nearly every
  brand of a comparative mention is judged, so a brand read as neutral takes the opposite of
  the polar reading of another brand's region, or, beside other brands also read as neutral
  in their own regions, comes out ahead when its region leans more positive. A brand named
  in a question or a plan ("¿Skyra tiene plazas?", "mañana pregunto en Nimbus") stays
  neutral.

A mention naming one brand is never planned (:func:`names_several_brands` is the one check
the firehose pays), and ``sentiment`` stays the mention-level result either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from pipeline.caching import BoundedCache
from pipeline.records import RoutedMention
from pipeline.stages.brands import BrandMatcher, load_brand_rules
from pipeline.stages.sentiment.clauses import (
    Cue,
    asks_or_plans,
    find_cues,
    names_together,
    placeholder,
    split_clauses,
)
from pipeline.stages.sentiment.labels import SentimentResult
from pipeline.text import fold, folded_tokens

# a verdict whose source is the mention's own result rather than one of the plan's segments
MENTION: Final = -1

Tone = Literal["as scored", "reversed", "positive", "negative"]


@dataclass(frozen=True, slots=True)
class BrandVerdict:
    """Where one brand's result comes from: a segment (or :data:`MENTION`), and its tone.

    ``own``: the result reads the brand's own regions (or speaks of all brands at once), so
    a neutral one may be settled by :func:`settle_neutral`; ``open``: the brand is named in a
    question or a plan, and a neutral result stands.
    """

    source: int
    tone: Tone = "as scored"
    own: bool = False
    open: bool = False


@dataclass(frozen=True, slots=True)
class TargetPlan:
    """The extra texts one mention needs scored, and how each brand's result is read."""

    brands: tuple[str, ...]
    segments: tuple[str, ...]
    verdicts: tuple[BrandVerdict, ...]


@dataclass(slots=True)
class _Region:
    """Consecutive clauses about the same brands: their text, and brands as placeholders."""

    text: str
    skeleton: str
    named: frozenset[int]
    # each placeholder in the skeleton and the (folded) words it stands for, in order
    marks: list[tuple[str, str]]


def names_several_brands(mention: RoutedMention) -> bool:
    """Whether a mention names two or more distinct brands (only those are planned)."""
    brands = mention.brands
    return isinstance(brands, list) and len(brands) > 1 and len(set(brands)) > 1


class BrandTargets:
    """Plans and reads per-brand sentiment for mentions naming several brands.

    >>> from pipeline.stages.brands import brand_rules_from_dicts
    >>> targets = BrandTargets(BrandMatcher(brand_rules_from_dicts([
    ...     {"id": "acme", "query": "acme"}, {"id": "telvia", "query": "telvia"}])))
    >>> plan = targets.plan("Me pasé de Telvia a Acme y qué diferencia", ["acme", "telvia"])
    >>> [(verdict.source, verdict.tone) for verdict in plan.verdicts]
    [(-1, 'positive'), (-1, 'negative')]
    >>> targets.plan("Telvia caída otra vez. Acme bien", ["acme", "telvia"]).segments
    ('Acme bien', 'Telvia caída otra vez.')
    """

    def __init__(self, matcher: BrandMatcher, *, cache_size: int = 20_000) -> None:
        self.matcher = matcher
        # a retweet or copy is the same text: planned once while it is remembered
        self._plans = BoundedCache[tuple[str, tuple[str, ...], str | None], TargetPlan](
            cache_size)

    def plan(self, text: str, brands: Sequence[str], lang: str | None = None) -> TargetPlan:
        """What to score for ``text`` and how to read each of ``brands`` (distinct, in order)."""
        key = (text, tuple(dict.fromkeys(brands)), lang)
        known = self._plans.get(key)
        if known is None:
            known = self._plans.remember(key, self._plan(text, key[1], lang))
        return known

    def _plan(self, text: str, brands: tuple[str, ...], lang: str | None) -> TargetPlan:
        regions = _join_regions([self._clause(clause, brands)
                                 for clause in split_clauses(text, lang)])
        segments: dict[str, int] = {}

        def source_of(segment: str) -> int:
            if segment.strip() == text.strip():
                return MENTION
            return segments.setdefault(segment, len(segments))

        cues = [(region, cue) for region in regions if len(region.named) > 1
                for cue in find_cues(region.skeleton)]
        together = not cues and names_together(fold(text))
        verdicts: list[BrandVerdict] = []
        for index in range(len(brands)):
            solo = [r.text for r in regions if r.named == {index}]
            shared = [r for r in regions if index in r.named and len(r.named) > 1]
            cue = next(((region, cue) for region, cue in cues
                        if index in (cue.ahead, cue.behind)), None)
            named_in = " ".join(r.text for r in regions if index in r.named)
            is_open = asks_or_plans(fold(named_in))
            if cue is not None:
                verdicts.append(_cue_verdict(index, *cue, source_of))
            elif together:
                verdicts.append(BrandVerdict(MENTION, own=True, open=is_open))
            elif solo or shared:
                verdicts.append(BrandVerdict(source_of(" ".join(solo or [r.text for r in shared])),
                                             own=bool(solo), open=is_open))
            else:  # named across a clause boundary only: the mention's result
                verdicts.append(BrandVerdict(MENTION, open=is_open))
        return TargetPlan(brands, tuple(segments), tuple(verdicts))

    def _clause(self, clause: str, brands: tuple[str, ...]) -> _Region:
        """One clause as a region: which brands it names, each replaced by its placeholder."""
        folded, tokens = folded_tokens(clause)
        named = self.matcher.brand_spans([token.group() for token in tokens], brands)
        hits = sorted((span, brands.index(brand)) for brand, spans in named.items()
                      for span in spans)
        skeleton: list[str] = []
        marks: list[tuple[str, str]] = []
        cursor = 0
        for (first, last), index in hits:
            start, end = tokens[first].start(), tokens[last].end()
            if start < cursor:  # overlapping terms: the first one stands
                continue
            skeleton.append(folded[cursor:start])
            marks.append((placeholder(index), folded[start:end]))
            skeleton.append(placeholder(index))
            cursor = end
        skeleton.append(folded[cursor:])
        return _Region(clause, "".join(skeleton), frozenset(index for _, index in hits), marks)

    def combine(self, plan: TargetPlan, mention_result: SentimentResult,
                segment_results: Sequence[SentimentResult]) -> dict[str, SentimentResult]:
        """Each brand's result, from the mention's and the plan's segments' results."""
        if len(segment_results) != len(plan.segments):
            raise ValueError(f"{len(segment_results)} results for {len(plan.segments)} segments")
        results = [toned(mention_result if verdict.source == MENTION
                         else segment_results[verdict.source], verdict.tone)
                   for verdict in plan.verdicts]
        return dict(zip(plan.brands, settle_neutral(plan.verdicts, results), strict=True))


def _join_regions(clauses: list[_Region]) -> list[_Region]:
    """Clauses naming no brand joined to the region before them (or the first one after)."""
    regions: list[_Region] = []
    leading: list[_Region] = []
    for clause in clauses:
        if not clause.named:
            if regions:
                _extend(regions[-1], clause)
            else:
                leading.append(clause)
            continue
        if leading:
            clause = _Region(" ".join([*(c.text for c in leading), clause.text]),
                             " ".join([*(c.skeleton for c in leading), clause.skeleton]),
                             clause.named, clause.marks)
            leading = []
        regions.append(clause)
    return regions


def _extend(region: _Region, clause: _Region) -> None:
    region.text = f"{region.text} {clause.text}"
    region.skeleton = f"{region.skeleton} {clause.skeleton}"


def _cue_verdict(index: int, region: _Region, cue: Cue, source_of: Any) -> BrandVerdict:
    """A brand's verdict from a comparative cue found in a region it shares."""
    if not cue.by_score:
        return BrandVerdict(source_of(region.text),
                            "positive" if index == cue.ahead else "negative")
    # X's side, back in words (folded): the text up to the comparative's "que" / "than"
    side = region.skeleton[:cue.cut]
    for mark, words in region.marks:
        side = side.replace(mark, words, 1)
    return BrandVerdict(source_of(side.strip()),
                        "as scored" if index == cue.ahead else "reversed")


def settle_neutral(verdicts: Sequence[BrandVerdict],
                   results: Sequence[SentimentResult]) -> list[SentimentResult]:
    """Each brand's result, a neutral one settled against the other brands' readings.

    A brand read neutral (not in a question or plan) takes the opposite of the polar label
    other sources give the other brands, when they agree; failing that, a brand read in its
    own regions is positive when they lean more positive than any other brand's own
    regions also read neutral (or, alone, when they lean positive at all), else negative.

    >>> calm = SentimentResult("neutral", {"negative": 0.3, "neutral": 0.5, "positive": 0.2})
    >>> angry = SentimentResult("negative", {"negative": 0.8, "neutral": 0.1, "positive": 0.1})
    >>> [r.label for r in settle_neutral([BrandVerdict(0), BrandVerdict(1)], [calm, angry])]
    ['positive', 'negative']
    """
    def lean(result: SentimentResult) -> float:
        return result.scores["positive"] - result.scores["negative"]

    settled = list(results)
    for index, (verdict, result) in enumerate(zip(verdicts, results, strict=True)):
        if result.label != "neutral" or verdict.open:
            continue
        others = {other.label for v, other in zip(verdicts, results, strict=True)
                  if v.source != verdict.source and other.label != "neutral"}
        if verdict.tone == "as scored" and len(others) == 1:
            settled[index] = toned(result, "negative" if "positive" in others else "positive")
        elif verdict.own:
            rivals = [lean(other) for v, other in zip(verdicts, results, strict=True)
                      if v.own and not v.open and v.source != verdict.source]
            ahead = lean(result) > max(rivals) if rivals else lean(result) >= 0
            settled[index] = toned(result, "positive" if ahead else "negative")
    return settled


def toned(result: SentimentResult, tone: Tone) -> SentimentResult:
    """A result read with a verdict's tone.

    ``reversed`` swaps the negative and positive scores; ``positive`` / ``negative`` put the
    larger of the two on that side and take that label (a cue decided it).

    >>> toned(SentimentResult("negative", {"negative": 0.7, "neutral": 0.2, "positive": 0.1}),
    ...       "reversed")
    SentimentResult(label='positive', scores={'negative': 0.1, 'neutral': 0.2, 'positive': 0.7})
    """
    if tone == "as scored":
        return result
    negative, neutral, positive = (result.scores[name]
                                   for name in ("negative", "neutral", "positive"))
    if tone == "reversed":
        label = {"negative": "positive", "positive": "negative"}.get(result.label, result.label)
        return SentimentResult(label, {"negative": positive, "neutral": neutral,
                                       "positive": negative})
    high, low = max(negative, positive), min(negative, positive)
    scores = ({"negative": low, "neutral": neutral, "positive": high} if tone == "positive"
              else {"negative": high, "neutral": neutral, "positive": low})
    return SentimentResult(tone, scores)


def build_brand_targets(brands_file: Path) -> BrandTargets:
    """Per-brand sentiment over the listening queries of ``brands_file``."""
    return BrandTargets(BrandMatcher(load_brand_rules(brands_file), cache_size=0))


__all__ = [
    "MENTION",
    "BrandTargets",
    "BrandVerdict",
    "TargetPlan",
    "build_brand_targets",
    "names_several_brands",
    "settle_neutral",
    "toned",
]
