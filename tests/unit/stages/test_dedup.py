import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest

from pipeline.connectors.generator import FirehoseGenerator
from pipeline.event_time import split_by_event_time
from pipeline.records import UNIQUE, UniqueMention, wire_dict
from pipeline.schema import InvalidMention, validated_record
from pipeline.stages import dedup as dedup_module
from pipeline.stages.dedup import (
    NEAR_THRESHOLD,
    DedupInput,
    Deduplicator,
    apply_verdict,
    mark_duplicates,
)
from pipeline.stages.dedup_encoded import mark_encoded_duplicates, mark_routed
from pipeline.stages.dedup_minhash import (
    decode_signature,
    encode_signature,
    shingle_hashes,
    signature,
    signatures,
)
from pipeline.stages.dedup_text import fingerprint, normalise_for_matching
from pipeline.transport.topics import encode_batch, join_batches

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
TWEET = "Acme Mobile lleva tres horas sin dar servicio en todo Madrid, vergonzoso"
OTHER = "Nimbus Bank abre nuevas oficinas en Lisboa la próxima semana"
THIRD = "the new Zephyr headphones sound great but the app keeps crashing"
FOURTH = "Orbit Air cancelled my flight again, third time this month"
STORE_NAMES = ("mentions", "exact", "clusters", "variants")


def item(mention_id: str, text: str, minutes: float = 0) -> DedupInput:
    return DedupInput(mention_id, text, (T0 + timedelta(minutes=minutes)).timestamp())


def summary(verdicts: list[Any]) -> list[tuple[str | None, str, int]]:
    return [(v.duplicate_of, v.kind, v.copy_count) for v in verdicts]


def test_normalisation_drops_what_copies_change() -> None:
    assert normalise_for_matching("RT @ana: Ñandú CAÍDO!!! 😡 https://t.co/x?utm=1 @bob") == (
        "nandu caido"
    )
    assert normalise_for_matching(TWEET) == normalise_for_matching(f"RT @x: {TWEET.upper()} 🔥")
    assert normalise_for_matching("  acme\n\t down   ...  again?!?!  ") == "acme down again"
    # the URL goes whole, so two trackers on one link leave the same text
    assert normalise_for_matching("read www.acme.example/a?utm_source=x&fbclid=1 now") == (
        normalise_for_matching("read https://acme.example/a?gclid=2 now")
    )
    assert normalise_for_matching("") == normalise_for_matching("😂😂 !!!") == ""


def test_the_cached_matching_form_is_the_normalised_text_and_its_fingerprint() -> None:
    # copies that differ only in their copy marks share the second cache's entry: each
    # answer must still be the text's own normalisation
    texts = [
        f"{prefix}{TWEET}{suffix}"
        for prefix in ("", "RT @ana: ", "RT @bob: ", "rt @Ana ")
        for suffix in ("", " https://t.co/x?utm=1", " https://t.co/y?utm=2 @cc", " 🔥")
    ] + ["RT @ana: ", "@x @y https://t.co/z", TWEET.upper()]
    dedup_module.matching_and_fingerprint.cache_clear()
    for _ in range(2):  # the second pass answers from the caches
        for text in texts:
            matching = normalise_for_matching(text)
            assert dedup_module.matching_and_fingerprint(text) == (
                matching, fingerprint(matching)), text


def test_shingles_are_per_text_and_signatures_do_not_depend_on_the_batch() -> None:
    hashes, offsets = shingle_hashes(["abcdef", "ab", "", "xabcdefy"])
    assert offsets.tolist() == [0, 3, 4, 4, 9]
    # "abcd", "bcde", "cdef" are hashed the same inside "xabcdefy"
    assert set(hashes[:3].tolist()) <= set(hashes[4:].tolist())
    texts = [normalise_for_matching(t) for t in (TWEET, OTHER, "ab", "")]
    batched = signatures(texts)
    one_by_one = np.vstack([signatures([text]) for text in texts])
    assert np.array_equal(batched, one_by_one)
    assert decode_signature(encode_signature(batched[0])).tolist() == batched[0].tolist()
    # older entries hold hex or a list of ints
    assert decode_signature(batched[1].tolist()).tolist() == batched[1].tolist()
    hexed = batched[1].astype(">u4").tobytes().hex()
    assert decode_signature(hexed).tolist() == batched[1].tolist()


def test_exact_near_and_unique() -> None:
    verdicts = Deduplicator().check([
        item("1", TWEET),
        item("2", f"RT @someone: {TWEET} https://lnk.example/?utm_source=tw"),
        item("3", TWEET.replace("tres", "cuatro")),
        item("4", OTHER),
        item("5", f"{TWEET} #fail #acme"),
        item("6", "Vergonzoso: Acme Mobile lleva tres horas sin dar servicio en todo Madrid"),
    ])
    assert summary(verdicts) == [
        (None, "unique", 1), ("1", "exact", 2), ("1", "near", 3), (None, "unique", 1),
        ("1", "near", 4), ("1", "near", 5),
    ]
    assert verdicts[1].similarity == 1.0
    assert verdicts[2].similarity is not None and verdicts[2].similarity >= NEAR_THRESHOLD


def test_a_repeated_near_copy_takes_the_memo_not_another_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dedup = Deduplicator(window=timedelta(hours=1))
    variant = TWEET.replace("tres", "cuatro")
    first = dedup.check([item("1", TWEET), item("2", variant)])
    assert dedup.variants == {
        fingerprint(normalise_for_matching(variant)): ["1", first[1].similarity],
    }
    signed: list[int] = []
    real_signatures = dedup_module.signatures

    def counting_signatures(texts: list[str]) -> Any:
        signed.append(len(texts))
        return real_signatures(texts)

    monkeypatch.setattr(dedup_module, "signatures", counting_signatures)
    again = dedup.check([item("3", f"RT @x: {variant}"), item("4", TWEET), item("5", OTHER)])
    assert summary(again) == [("1", "near", 3), ("1", "exact", 4), (None, "unique", 1)]
    assert again[0].similarity == first[1].similarity
    # only the new text needed a MinHash signature; the two repeats did not
    assert signed == [1]
    # the memo goes with its conversation: five mention records, two conversations, one memo
    assert dedup.expire(T0 + timedelta(minutes=61)) == 8
    assert not dedup.variants
    assert summary(dedup.check([item("6", variant, 62)])) == [(None, "unique", 1)]


def test_shared_boilerplate_is_not_a_copy() -> None:
    block = "#giveaway #win #follow #contest #rt #free #prize"
    verdicts = Deduplicator().check([
        item("1", f"{TWEET} {block}"),
        item("2", f"{OTHER} {block}"),
        item("3", f"I just voted for {THIRD} in the awards! https://vote.example/1 #awards"),
        item("4", f"I just voted for {FOURTH} in the awards! https://vote.example/2 #awards"),
    ])
    assert [v.kind for v in verdicts] == ["unique"] * 4


def test_redelivery_is_idempotent() -> None:
    dedup = Deduplicator()
    first = dedup.check([item("1", TWEET), item("2", TWEET)])
    again = dedup.check([item("2", TWEET), item("1", TWEET), item("2", TWEET)])
    # each gets its first verdict again, count included: a replay after a crash must not
    # change what downstream (the store keeps the latest row) sees of a mention
    assert summary(again) == [("1", "exact", 2), (None, "unique", 1), ("1", "exact", 2)]
    assert summary(first) == [(None, "unique", 1), ("1", "exact", 2)]
    assert dedup.clusters["1"]["n"] == 2
    assert dedup.check([item("3", TWEET)])[0].copy_count == 3
    assert summary(dedup.check([item("1", TWEET), item("2", TWEET)])) == [
        (None, "unique", 1), ("1", "exact", 2)]


def test_a_shorter_redelivery_window_forgets_mentions_but_not_conversations() -> None:
    dedup = Deduplicator(window=timedelta(hours=24), redelivery_window=timedelta(hours=1))
    dedup.check([item("1", TWEET), item("2", f"{TWEET} #fail")])
    assert dedup.expire(T0 + timedelta(hours=2)) == 2
    assert not dedup.mentions and set(dedup.clusters) == {"1"}
    again = dedup.check([item("1", TWEET, 121), item("3", TWEET, 121)])
    assert summary(again) == [(None, "unique", 2), ("1", "exact", 3)]


def test_state_survives_a_new_deduplicator_over_the_same_stores() -> None:
    stores: dict[str, dict[str, Any]] = {name: {} for name in STORE_NAMES}
    Deduplicator(**stores).check([item("1", TWEET), item("2", OTHER), item("3", TWEET)])
    # what a changelog holds: every value through JSON and back
    restored = {
        name: {key: orjson.loads(orjson.dumps(value)) for key, value in store.items()}
        for name, store in stores.items()
    }
    restarted = Deduplicator(**restored)
    assert restarted.rebuild_bands() == 2
    verdicts = restarted.check([
        item("3", TWEET), item("4", f"{TWEET} #fail"), item("5", OTHER.upper()),
    ])
    assert summary(verdicts) == [("1", "exact", 2), ("1", "near", 3), ("2", "exact", 2)]


def test_expiry_deletes_old_entries_and_keeps_recent_ones() -> None:
    dedup = Deduplicator(window=timedelta(hours=1))
    dedup.check([item("1", TWEET), item("2", OTHER, minutes=50)])
    assert dedup.expire(T0 + timedelta(minutes=30)) == 0
    # "1" (and its mention record) go; "2" is 20 minutes old at 70 and stays
    assert dedup.expire(T0 + timedelta(minutes=70)) == 2
    assert set(dedup.clusters) == {"2"} and set(dedup.mentions) == {"2"}
    assert list(dedup.exact.values()) == ["2"]
    remaining = {m for band in dedup.bands.values() for m in ([band] if isinstance(band, str)
                                                                   else band)}
    assert remaining == {"2"}
    assert summary(dedup.check([item("3", TWEET, 71), item("4", OTHER, 71)])) == [
        (None, "unique", 1), ("2", "exact", 2),
    ]
    dedup.expire(T0 + timedelta(hours=5))
    assert not dedup.clusters and not dedup.exact and not dedup.bands and not dedup.mentions


def test_band_capacity_bounds_each_band() -> None:
    dedup = Deduplicator(band_capacity=2, near_threshold=1.01)
    dedup.check([item(str(n), f"{TWEET} {n}") for n in range(5)])
    assert max(len(band) if isinstance(band, list) else 1 for band in dedup.bands.values()) == 2


def test_short_texts_only_match_exactly() -> None:
    verdicts = Deduplicator().check([
        item("1", "me encanta"), item("2", "me encantan"), item("3", "ME ENCANTA!!"),
        item("4", ""), item("5", "🔥"),
    ])
    assert summary(verdicts) == [
        (None, "unique", 1), (None, "unique", 1), ("1", "exact", 2), (None, "unique", 1),
        ("4", "exact", 2),
    ]
    assert Deduplicator().check([]) == []


def test_apply_verdict_marks_the_record() -> None:
    verdicts = Deduplicator().check([item("1", TWEET), item("2", f"{TWEET} #fail")])
    mention = UniqueMention(id="2", text=f"{TWEET} #fail", created_at="")
    apply_verdict(mention, verdicts[1])
    assert mention.duplicate_of == "1" and mention.duplicate_kind == "near"
    assert mention.copy_count == 2 and mention.text == f"{TWEET} #fail"
    assert wire_dict(mention)["duplicate_similarity"] == verdicts[1].similarity


def test_signatures_and_routing_are_the_same_in_every_process() -> None:
    code = (
        "from pipeline.stages.dedup_minhash import signature;"
        "from pipeline.stages.dedup_text import normalise_for_matching;"
        "from pipeline.stages.routing import routing_key;"
        f"print(signature(normalise_for_matching({TWEET!r}))[:4], routing_key({TWEET!r}))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert str(signature(normalise_for_matching(TWEET))[:4]) in outputs.pop()


def routed_batches() -> list[list[dict[str, Any]]]:
    """Synthetic firehose mentions as ingest forwards them, in micro-batches of 50."""
    generator = FirehoseGenerator(seed=5, start=T0)
    mentions = [validated_record(mention, max_text_chars=10_000)
                for mention in generator.mentions(600)]
    for number, mention in enumerate(mentions):
        mention.update(brands=["acme"], lang="es", ingested_at=1_795_000_000 + number / 3)
    return [mentions[start:start + 50] for start in range(0, len(mentions), 50)]


def test_marking_an_encoded_batch_gives_the_bytes_marking_the_decoded_one_gives() -> None:
    decoded_side, encoded_side = Deduplicator(), Deduplicator()
    kinds: Counter[str] = Counter()
    for batch in routed_batches():
        marked = mark_encoded_duplicates(encoded_side, encode_batch(batch))
        assert marked is not None
        typed = [UNIQUE.from_dict(mention) for mention in batch]
        verdicts, newest = mark_duplicates(decoded_side, typed)
        assert marked.verdicts == verdicts and marked.newest == newest
        # the splice writes what the codec writes of the marked records
        assert join_batches(marked.encoded) == [UNIQUE.encode(typed)]
        assert marked.mention_ids == [mention["id"] for mention in batch]
        assert marked.ingested_at == [mention["ingested_at"] for mention in batch]
        kinds.update(verdict.kind for verdict in verdicts)
    # the firehose repeats itself: all three kinds of verdict were spliced in
    assert set(kinds) == {"unique", "exact", "near"}
    for name in STORE_NAMES:
        assert getattr(encoded_side, name) == getattr(decoded_side, name)


def test_an_encoded_batch_with_whitespace_gets_each_verdict_before_its_closing_brace() -> None:
    batch = routed_batches()[0]
    # pretty-printed: whitespace inside, around and between the objects
    spaced = json.dumps(batch, indent=2, ensure_ascii=False).encode()
    marked = mark_encoded_duplicates(Deduplicator(), spaced)
    assert marked is not None
    typed = [UNIQUE.from_dict(mention) for mention in batch]
    mark_duplicates(Deduplicator(), typed)
    assert [orjson.loads(encoded) for encoded in marked.encoded] == [
        wire_dict(mention) for mention in typed]


@pytest.mark.parametrize("micro_batch", [
    b'{"id": "1"}',  # not an array
    b'[{"id": "1", "text": "acme", "created_at": "2026-11-22T10:00:00+00:00"}, 7]',
    b'[{"id": 1, "text": "acme", "created_at": "2026-11-22T10:00:00+00:00"}]',
    b'[{"id": "1", "text": "acme", "created_at": "yesterday"}]',
    b'[{"id": "1", "text": "acme", "created_at": "2026-11-22T10:00:00+00:00",'
    b' "ingested_at": "soon"}]',
    b'[{"id": "1", "text": "acme", "created_at": "2026-11-22T10:00:00+00:00",'
    b' "copy_count": 3}]',  # marked before: the decoded path overwrites the old verdict
    b"[{oops",
])
def test_an_unusual_encoded_batch_is_left_to_the_decoded_path_untouched(
    micro_batch: bytes,
) -> None:
    deduplicator = Deduplicator()
    assert mark_encoded_duplicates(deduplicator, micro_batch) is None
    assert all(not getattr(deduplicator, name) for name in STORE_NAMES)


def test_a_mention_without_a_readable_time_raises_before_the_state_changes() -> None:
    dicts = routed_batches()[0][:3]
    dicts[1] = dicts[1] | {"created_at": "2026-11-22T10:00:00"}  # no offset
    batch = [UNIQUE.from_dict(mention) for mention in dicts]
    deduplicator = Deduplicator()
    with pytest.raises(InvalidMention, match="bad_timestamp"):
        mark_duplicates(deduplicator, batch)
    assert all(not getattr(deduplicator, name) for name in STORE_NAMES)
    # the agent's order: split off the unreadable ones (dead letters), mark the rest
    kept, unreadable = split_by_event_time(batch)
    verdicts, newest = mark_duplicates(deduplicator, kept)
    assert [mention for mention, _ in unreadable] == [batch[1]] and len(verdicts) == 2
    assert newest == max(datetime.fromisoformat(mention.created_at) for mention in kept)


def test_mark_routed_takes_any_shape_to_the_same_encoded_result() -> None:
    usual, unusual = Deduplicator(), Deduplicator()
    batch = routed_batches()[0][:4]
    marked = mark_routed(usual, encode_batch(batch)).marked
    # verdict keys already there: decoded whole, marked, encoded again (the old verdict goes)
    stale = [mention | {"copy_count": 99} for mention in batch]
    again = mark_routed(unusual, encode_batch([*stale, {**batch[0], "created_at": "soon"}]))
    assert marked is not None and again.marked is not None and again.decoded_whole
    assert [orjson.loads(m) for m in again.marked.encoded] == [
        orjson.loads(m) for m in marked.encoded]
    assert again.marked.verdicts == marked.verdicts
    assert again.marked.mention_ids == marked.mention_ids
    assert [error.reason for _, error in again.unreadable] == ["bad_timestamp"]
    broken = mark_routed(Deduplicator(), b"[{oops")
    assert broken.marked is None and broken.broken


