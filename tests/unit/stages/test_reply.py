"""The reply core: which mentions need an answer, per language, with the committed head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import orjson
import pytest

from pipeline.records import ScoredMention, Sentiment
from pipeline.stages.brands import brand_rules_from_dicts
from pipeline.stages.reply import (
    REASONS,
    ReplyClassifier,
    brand_handles,
    is_copy,
    sentiment_scores,
)
from pipeline.stages.reply.cues import FEATURE_NAMES, cue_features, is_retweet
from pipeline.stages.reply.head import CLASSES, ReplyHead, fit_head, load_head

NEGATIVE = {"negative": 0.9, "neutral": 0.08, "positive": 0.02}
NEUTRAL = {"negative": 0.1, "neutral": 0.8, "positive": 0.1}
POSITIVE = {"negative": 0.02, "neutral": 0.08, "positive": 0.9}


def mention(text: str, lang: str, scores: dict[str, float] = NEUTRAL,
            **fields: Any) -> ScoredMention:
    return ScoredMention(**{"id": "m1", "text": text, "created_at": "", "lang": lang,
                            "brands": ["acme-mobile"],
                            "sentiment": Sentiment(max(scores, key=scores.__getitem__), scores),
                            **fields})


@pytest.fixture(scope="module")
def classifier() -> ReplyClassifier:
    rules = brand_rules_from_dicts([{"id": "acme-mobile", "name": "Acme Mobile",
                                     "query": '"acme mobile" OR @acmemobile'}])
    return ReplyClassifier(handles=brand_handles(rules))


@pytest.mark.parametrize(("text", "lang", "scores", "reason"), [
    # Spanish first
    ("@acmemobile ¿cuándo llega la fibra a mi barrio?", "es", NEUTRAL, "question"),
    ("@acmemobile ¿Cómo cambio la tarifa desde la app?", "es", NEUTRAL, "question"),
    ("@acmemobile llevo tres días sin internet y no funciona nada, pésimo servicio", "es",
     NEGATIVE, "complaint"),
    ("@acmemobile muchas gracias, excelente atención!", "es", POSITIVE, "praise"),
    ("Hoy hace sol en Madrid y me voy a la playa", "es", POSITIVE, None),
    # English
    ("@acmemobile how do I change my plan in the app?", "en", NEUTRAL, "question"),
    ("@acmemobile your app is not working again, worst service ever", "en", NEGATIVE,
     "complaint"),
    ("Going to the beach with my friends this weekend", "en", POSITIVE, None),
    # others read with their own lexicons
    ("@acmemobile Bei mir funktioniert nicht das Internet, schon wieder", "de", NEGATIVE,
     "complaint"),
    ("@acmemobile quand ouvre la boutique de Lyon ?", "fr", NEUTRAL, "question"),
])
def test_mentions_get_the_reason_a_person_would_give(
        classifier: ReplyClassifier, text: str, lang: str, scores: dict[str, float],
        reason: str | None) -> None:
    assert classifier.reason(mention(text, lang, scores)) == reason


@pytest.mark.parametrize("copy", [
    {"duplicate_of": "m0", "duplicate_kind": "exact"},
    {"duplicate_of": "m0", "duplicate_kind": "near"},
])
def test_copies_never_need_a_reply(classifier: ReplyClassifier, copy: dict[str, Any]) -> None:
    complaint = mention("@acmemobile llevo tres días sin internet, pésimo servicio", "es",
                        NEGATIVE)
    assert classifier.reason(complaint) == "complaint"
    assert classifier.reason(msgspec.structs.replace(complaint, id="m2", **copy)) is None


def test_retweets_never_need_a_reply(classifier: ReplyClassifier) -> None:
    retweet = mention("RT @fan: @acmemobile ¿cuándo llega la fibra a mi barrio?", "es")
    assert is_retweet(retweet.text) and is_copy(retweet)
    assert classifier.reason(retweet) is None


def test_mark_writes_a_verdict_on_every_mention(classifier: ReplyClassifier) -> None:
    batch = [mention("@acmemobile ¿cuándo llega la fibra a mi barrio?", "es"),
             mention("Hoy hace sol", "es", POSITIVE),
             mention("RT @fan: hola", "es")]
    assert classifier.mark(batch) == 1
    assert [m.needs_reply for m in batch] == ["question", None, None]


def test_a_brand_handle_in_the_text_addresses_the_brand(classifier: ReplyClassifier) -> None:
    assert classifier.handles == {"acme-mobile": frozenset({"@acmemobile"})}
    assert classifier.addresses_brand(mention("Hola @AcmeMobile", "es"))
    assert not classifier.addresses_brand(mention("Hola @telvia", "es"))
    assert not classifier.addresses_brand(mention("Hola @acmemobile", "es", brands=[]))


def test_a_mention_without_sentiment_reads_as_neutral() -> None:
    assert sentiment_scores(mention("x", "es", sentiment=None))["neutral"] == 1.0
    partial = mention("x", "es", sentiment=Sentiment("negative", {"negative": 1}))
    assert sentiment_scores(partial) == {"negative": 0.0, "neutral": 1.0, "positive": 0.0}


def test_cues_are_read_in_the_mentions_language() -> None:
    scores = NEUTRAL
    spanish = cue_features("¿Dónde está mi pedido? No me llega", "es", scores)
    names = {name: index for index, name in enumerate(FEATURE_NAMES)}
    assert spanish.dtype == np.float32 and spanish.shape == (len(FEATURE_NAMES),)
    assert spanish[names["inverted_question_mark"]] == 1.0
    assert spanish[names["interrogative_opens_clause"]] == 1.0
    assert spanish[names["complaint_cues"]] >= 1.0
    # "lo que" relates, it does not ask
    assert cue_features("Es lo que hay", "es", scores)[names["interrogative_opens_clause"]] == 0
    # a rhetorical "(?)" is not a question mark
    assert cue_features("Al séptimo día descansó (?)", "es", scores)[names["question_mark"]] == 0
    assert cue_features("thanks so much!", "en", scores)[names["thanks_cues"]] == 1.0
    assert cue_features("@acme ok", "en", scores)[names["addressed"]] == 1.0


@pytest.mark.parametrize(("text", "lang", "asks", "rhetorical"), [
    ("¿Alguien sabe a qué hora abre?", "es", True, False),
    ("¿Por qué siempre nos toca lo peor?", "es", False, True),
    ("Anyone going to the show on Friday?", "en", True, False),
    ("Why would anyone do that?", "en", True, True),
    ("Who cares about the weather", "en", False, True),
    ("Qualcuno sa dove comprarlo?", "it", True, False),
])
def test_asking_the_audience_and_rhetoric_are_told_apart(
        text: str, lang: str, asks: bool, rhetorical: bool) -> None:
    names = {name: index for index, name in enumerate(FEATURE_NAMES)}
    features = cue_features(text, lang, NEGATIVE)
    assert (features[names["asks_audience"]] > 0) == asks
    assert (features[names["asks_x_question"]] > 0) == (asks and "?" in text)
    assert (features[names["rhetorical_cues"]] > 0) == rhetorical
    assert features[names["rhetorical_x_negative"]] == pytest.approx(
        NEGATIVE["negative"] if rhetorical else 0.0)


def test_the_head_fits_a_separable_problem_and_survives_json(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    features = np.zeros((200, len(FEATURE_NAMES)), dtype=np.float32)
    features[:, 0] = 1.0
    labels: list[str | None] = []
    for row in range(200):
        klass = row % len(CLASSES)
        features[row, 1 + klass] = 1.0 + rng.normal(0, 0.1)
        labels.append(None if klass == 0 else CLASSES[klass])
    head = ReplyHead(fit_head(features, labels), {reason: 0.5 for reason in REASONS})
    assert head.reasons(features) == labels
    path = tmp_path / "head.json"
    path.write_bytes(head.to_json())
    assert load_head(path).reasons(features) == labels


def test_a_head_fitted_on_other_features_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "head.json"
    document = orjson.loads(load_head().to_json())
    path.write_bytes(orjson.dumps({**document, "features": document["features"][:-1]}))
    with pytest.raises(ValueError, match="refit"):
        load_head(path)
