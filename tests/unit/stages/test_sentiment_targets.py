"""Per-brand sentiment: clauses, comparative cues, plans, and the records they write."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from pipeline.records import SCORED, ScoredMention, wire_dict
from pipeline.stages.brands import BrandMatcher, brand_rules_from_dicts
from pipeline.stages.sentiment.clauses import (
    asks_or_plans,
    find_cues,
    names_together,
    placeholder,
    split_clauses,
)
from pipeline.stages.sentiment.labels import SentimentResult
from pipeline.stages.sentiment.mentions import (
    BY_BRAND,
    CopyMemory,
    model_inputs,
    score_mentions,
)
from pipeline.stages.sentiment.targets import (
    MENTION,
    BrandTargets,
    BrandVerdict,
    settle_neutral,
    toned,
)
from pipeline.text import fold

RULES = [{"id": "acme", "query": '"acme movil" OR acme OR @acmemobile'},
         {"id": "telvia", "query": "telvia OR @telvia"},
         {"id": "skyra", "query": "skyra"}]
X, Y = placeholder(0), placeholder(1)


def result(label: str) -> SentimentResult:
    scores = {"negative": 0.1, "neutral": 0.1, "positive": 0.1}
    scores[label] = 0.8
    return SentimentResult(label, scores)


@pytest.fixture
def targets() -> BrandTargets:
    return BrandTargets(BrandMatcher(brand_rules_from_dicts(RULES)))


@pytest.mark.parametrize(("text", "lang", "clauses"), [
    ("Acme genial pero Telvia un desastre", "es", ["Acme genial", "pero Telvia un desastre"]),
    ("Acme is great whereas Telvia is not", "en", ["Acme is great", "whereas Telvia is not"]),
    ("Acme va bien, en cambio Telvia no", "es", ["Acme va bien,", "en cambio Telvia no"]),
    ("Telvia caída. Acme bien!", None, ["Telvia caída.", "Acme bien!"]),
    ("Acme e Telvia ma non troppo", "it", ["Acme e Telvia", "ma non troppo"]),
    # "mas" is "más" typed fast in Spanish: only Portuguese cuts there
    ("Acme mas barata que Telvia", "es", ["Acme mas barata que Telvia"]),
])
def test_clauses_are_cut_at_punctuation_and_the_language_s_connectors(
    text: str, lang: str | None, clauses: list[str],
) -> None:
    assert split_clauses(text, lang) == clauses


@pytest.mark.parametrize(("skeleton", "ahead", "behind"), [
    (f"{X} es mucho mejor que {Y}", 0, 1),
    (f"{X} peor que {Y}", 1, 0),
    (f"me pase de {X} a {Y} y que diferencia", 1, 0),
    (f"switched from {X} to {Y}", 1, 0),
    (f"deje {X} por {Y}", 1, 0),
    (f"{X} >>> {Y}", 0, 1),
    (f"{X} < {Y}", 1, 0),
    (f"{X} aprende de {Y}", 1, 0),
    (f"{X} beats {Y} on price", 0, 1),
    (f"{X} meglio di {Y}", 0, 1),
    (f"{X} besser als {Y}", 0, 1),
])
def test_comparative_cues_say_which_brand_comes_out_ahead(
    skeleton: str, ahead: int, behind: int,
) -> None:
    cue = find_cues(skeleton)[0]
    assert (cue.ahead, cue.behind, cue.by_score) == (ahead, behind, False)


def test_a_comparative_without_direction_leaves_it_to_x_s_side() -> None:
    cues = find_cues(f"{X} mas barata y mas puntual que {Y}")
    assert [(c.ahead, c.behind, c.by_score) for c in cues] == [(0, 1, True)]
    assert find_cues(f"{X} vs {Y}: tarifas") == []


def test_brands_in_their_own_clauses_get_their_own_segments(targets: BrandTargets) -> None:
    plan = targets.plan("Telvia se cayó otra vez 😡 Menos mal que tengo Acme Movil",
                        ["acme", "telvia"], "es")
    assert plan.segments == ("Menos mal que tengo Acme Movil", "Telvia se cayó otra vez 😡")
    assert [(v.source, v.tone) for v in plan.verdicts] == [(0, "as scored"), (1, "as scored")]
    by_brand = targets.combine(plan, result("negative"), [result("positive"), result("negative")])
    assert {b: r.label for b, r in by_brand.items()} == {"acme": "positive",
                                                         "telvia": "negative"}


def test_a_cue_in_a_shared_clause_decides_the_direction(targets: BrandTargets) -> None:
    plan = targets.plan("Me pasé de @telvia a @acmemobile, por fin cobertura",
                        ["acme", "telvia"], "es")
    # the whole text is the shared region: no extra text to score
    assert plan.segments == ()
    by_brand = targets.combine(plan, result("positive"), [])
    assert {b: r.label for b, r in by_brand.items()} == {"acme": "positive",
                                                         "telvia": "negative"}
    assert by_brand["telvia"].scores["negative"] == pytest.approx(0.8)


def test_a_shared_clause_without_a_cue_keeps_the_mention_s_result(
    targets: BrandTargets,
) -> None:
    plan = targets.plan("Acme y Telvia caídos otra vez", ["acme", "telvia"], "es")
    assert [v.source for v in plan.verdicts] == [MENTION, MENTION]
    assert targets.combine(plan, result("negative"), [])["acme"].label == "negative"


def test_reversed_tone_swaps_the_polar_scores() -> None:
    assert toned(result("positive"), "reversed").label == "negative"
    assert toned(result("neutral"), "reversed").label == "neutral"


def mention(mention_id: str, text: str, brands: list[str], **extra: Any) -> ScoredMention:
    return SCORED.from_dict({"id": mention_id, "text": text, "created_at": "", "brands": brands,
                             "lang": "es", **extra})


def test_single_brand_mentions_stay_on_the_fast_path(targets: BrandTargets) -> None:
    mentions = [mention("1", "Acme bien", ["acme"]), mention("2", "Telvia mal", ["telvia"]),
                mention("3", "Acme y Acme", ["acme", "acme"])]
    memory = CopyMemory()
    plan = memory.plan(mentions)
    texts, carried = model_inputs(mentions, plan[0], targets)
    assert texts == ["Acme bien", "Telvia mal", "Acme y Acme"]
    assert len(carried) == 3
    score_mentions(mentions, [result("positive")] * 3, plan, memory, targets)
    assert all(m.sentiment_by_brand is msgspec.UNSET for m in mentions)


def test_scored_mentions_and_their_copies_carry_sentiment_by_brand(
    targets: BrandTargets,
) -> None:
    text = "Telvia fatal. Acme Movil genial"
    mentions = [mention("1", "Acme bien", ["acme"]), mention("2", text, ["telvia", "acme"]),
                mention("3", text, ["telvia", "acme"], duplicate_of="2")]
    memory = CopyMemory()
    plan = memory.plan(mentions)
    texts, carried = model_inputs(mentions, plan[0], targets)
    # the two mentions to score, then the segments of the one naming two brands
    assert texts == ["Acme bien", text, "Telvia fatal.", "Acme Movil genial"]
    assert carried[2:] == [None, None]
    by_text = {"Telvia fatal.": "negative", "Acme Movil genial": "positive"}
    scored = [result(by_text.get(t, "neutral")) for t in texts]
    score_mentions(mentions, scored, plan, memory, targets)
    assert wire_dict(mentions[1])["sentiment"]["label"] == "neutral"  # the mention's label
    by_brand = wire_dict(mentions[1])[BY_BRAND]
    assert {b: r["label"] for b, r in by_brand.items()} == {
        "telvia": "negative", "acme": "positive"}
    assert wire_dict(mentions[2])[BY_BRAND] == by_brand
    # a later copy inherits from the memory
    later = [mention("4", text, ["telvia", "acme"], duplicate_of="2")]
    later_plan = memory.plan(later)
    assert later_plan[0] == []
    score_mentions(later, [], later_plan, memory, targets)
    assert wire_dict(later[0])[BY_BRAND] == by_brand


def test_results_that_do_not_fit_the_plan_are_refused(targets: BrandTargets) -> None:
    mentions = [mention("1", "Telvia fatal. Acme genial", ["telvia", "acme"])]
    memory = CopyMemory()
    plan = memory.plan(mentions)
    with pytest.raises(ValueError, match="results"):
        score_mentions(mentions, [result("neutral")], plan, memory, targets)


def test_crisis_counts_read_each_brand_s_own_label() -> None:
    from pipeline.stages.alerts.terms import is_negative
    from pipeline.stages.crisis_partitions import tone_counts

    scored = mention("1", "", ["acme", "telvia"], sentiment={"label": "positive", "scores": {}},
                     **{BY_BRAND: {"acme": {"label": "positive", "scores": {}},
                                   "telvia": {"label": "negative", "scores": {}}}})
    assert (is_negative(scored, "telvia"), is_negative(scored, "acme")) == (True, False)
    assert is_negative(scored) is False  # no brand: the mention-level label
    counts = tone_counts([scored], owns=lambda brand: True)
    assert sorted(counts) == [("acme", "positive"), ("telvia", "negative")]


def scores(negative: float, neutral: float, positive: float) -> SentimentResult:
    label = max(("negative", negative), ("neutral", neutral), ("positive", positive),
                key=lambda pair: pair[1])[0]
    return SentimentResult(label, {"negative": negative, "neutral": neutral,
                                   "positive": positive})


@pytest.mark.parametrize(("text", "asks"), [
    ("¿Skyra tiene plazas mañana?", True),
    ("manana pregunto en telvia", True),
    ("my next trip is with skyra, let's see", True),
    ("the engineer came the next day", False),
    ("prochain vol avec skyra", True),
    ("telvia es un desastre", False),
])
def test_questions_and_plans_are_told_apart(text: str, asks: bool) -> None:
    assert asks_or_plans(fold(text)) is asks


@pytest.mark.parametrize(("text", "together"), [
    ("acme, telvia, zentel... todos te timan", True),
    ("pick any, they all rip you off", True),
    ("both stepped up during the storm", True),
    ("ninguno de los dos llega", True),
    ("beide sind teuer", True),
    # time, or one brand's fact, is not the brands together
    ("todos los dias igual con telvia", False),
    ("acme had me online the same day", False),
    ("no signal all morning", False),
])
def test_words_that_speak_of_every_brand_at_once(text: str, together: bool) -> None:
    assert names_together(fold(text)) is together


def test_a_neutral_brand_takes_the_opposite_of_the_other_s_polar_reading(
    targets: BrandTargets,
) -> None:
    plan = targets.plan("Acme vino al día siguiente; Telvia me daba cita para dentro de 15 días",
                        ["acme", "telvia"], "es")
    assert [(v.own, v.open) for v in plan.verdicts] == [(True, False), (True, False)]
    by_brand = targets.combine(plan, result("neutral"),
                               [scores(0.1, 0.3, 0.6), scores(0.3, 0.6, 0.1)])
    assert {b: r.label for b, r in by_brand.items()} == {"acme": "positive",
                                                         "telvia": "negative"}


def test_brands_both_read_neutral_are_ranked_by_their_lean(targets: BrandTargets) -> None:
    plan = targets.plan("Acme contestó enseguida. Telvia me tuvo una hora esperando",
                        ["acme", "telvia"], "es")
    # both neutral, and both lean negative: the one leaning less so comes out ahead
    by_brand = targets.combine(plan, result("neutral"),
                               [scores(0.30, 0.6, 0.10), scores(0.35, 0.6, 0.05)])
    assert {b: r.label for b, r in by_brand.items()} == {"acme": "positive",
                                                         "telvia": "negative"}


def test_a_brand_named_in_a_question_or_plan_stays_neutral(targets: BrandTargets) -> None:
    plan = targets.plan("Acme me ha cancelado el vuelo. ¿Skyra tiene plazas mañana?",
                        ["acme", "skyra"], "es")
    assert [v.open for v in plan.verdicts] == [False, True]
    by_brand = targets.combine(plan, result("negative"),
                               [result("negative"), scores(0.2, 0.7, 0.1)])
    assert {b: r.label for b, r in by_brand.items()} == {"acme": "negative",
                                                         "skyra": "neutral"}


def test_words_for_every_brand_give_each_the_mention_s_result(targets: BrandTargets) -> None:
    plan = targets.plan("Acme, Telvia, Skyra... da igual cuál elijas, todos te timan",
                        ["acme", "telvia", "skyra"], "es")
    assert plan.segments == ()
    assert all(v.source == MENTION and v.own for v in plan.verdicts)
    # a neutral reading that leans negative is settled toward its lean
    by_brand = targets.combine(plan, scores(0.4, 0.5, 0.1), [])
    assert {r.label for r in by_brand.values()} == {"negative"}


def test_a_shared_clause_without_a_cue_is_not_settled(targets: BrandTargets) -> None:
    plan = targets.plan("Acme y Telvia operarán la ruta desde marzo", ["acme", "telvia"], "es")
    assert [v.own for v in plan.verdicts] == [False, False]
    by_brand = targets.combine(plan, scores(0.2, 0.7, 0.1), [])
    assert {r.label for r in by_brand.values()} == {"neutral"}


def test_a_neutral_brand_without_rivals_takes_its_own_lean() -> None:
    own, shared = BrandVerdict(0, own=True), BrandVerdict(MENTION)
    calm = scores(0.1, 0.6, 0.3)
    settled = settle_neutral([own, shared], [calm, scores(0.2, 0.6, 0.2)])
    # the shared reading is not the brand's own: it stays neutral, and gives no contrast
    assert [r.label for r in settled] == ["positive", "neutral"]
    assert settled[0].scores == calm.scores
