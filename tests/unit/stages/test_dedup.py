import subprocess
import sys
from datetime import UTC, datetime, timedelta

from pipeline.stages.dedup import (
    DedupInput,
    Deduplicator,
    normalise_for_matching,
    routing_key,
    signature,
)

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
TWEET = "Acme Mobile lleva tres horas sin dar servicio en todo Madrid, vergonzoso"


def item(mention_id: str, text: str, minutes: float = 0) -> DedupInput:
    return DedupInput(mention_id, text, T0 + timedelta(minutes=minutes))


def test_normalisation_drops_what_copies_change() -> None:
    assert normalise_for_matching("RT @ana: Ñandú CAÍDO!!! 😡 https://t.co/x?utm=1 @bob") == (
        "nandu caido"
    )
    assert normalise_for_matching(TWEET) == normalise_for_matching(f"RT @x: {TWEET.upper()} 🔥")


def test_exact_near_and_unique() -> None:
    dedup = Deduplicator()
    verdicts = dedup.check([
        item("1", TWEET),
        item("2", f"RT @someone: {TWEET} https://lnk.example/?utm_source=tw"),
        item("3", TWEET.replace("tres", "cuatro")),
        item("4", "Nimbus Bank abre nuevas oficinas en Lisboa la próxima semana"),
    ])
    assert [(v.duplicate_of, v.kind, v.copy_count) for v in verdicts] == [
        (None, "unique", 1), ("1", "exact", 2), ("1", "near", 3), (None, "unique", 1),
    ]
    assert verdicts[2].similarity is not None and verdicts[2].similarity >= 0.68


def test_redelivery_is_idempotent() -> None:
    dedup = Deduplicator()
    first = dedup.check([item("1", TWEET), item("2", TWEET)])
    again = dedup.check([item("2", TWEET), item("1", TWEET)])
    assert [v.duplicate_of for v in again] == ["1", None]
    assert again[0].copy_count == first[1].copy_count == 2


def test_state_lives_in_the_injected_stores() -> None:
    stores: dict[str, dict] = {name: {} for name in ("mentions", "exact", "clusters", "bands")}
    Deduplicator(**stores).check([item("1", TWEET)])
    # a new instance over the same stores (a restarted worker over its tables) remembers
    again = Deduplicator(**stores).check([item("9", f"{TWEET} #fail")])
    assert again[0].duplicate_of == "1"


def test_expiry_bounds_memory() -> None:
    dedup = Deduplicator(window=timedelta(hours=1))
    dedup.check([item("1", TWEET), item("2", "otra cosa totalmente distinta sobre bancos")])
    assert dedup.expire(T0 + timedelta(minutes=30)) == 0
    assert dedup.expire(T0 + timedelta(hours=2)) > 0
    assert not dedup.clusters and not dedup.exact and not dedup.bands and not dedup.mentions
    assert dedup.check([item("3", TWEET, minutes=121)])[0].kind == "unique"


def test_short_texts_only_match_exactly() -> None:
    verdicts = Deduplicator().check([item("1", "me encanta"), item("2", "me encantan")])
    assert verdicts[1].kind == "unique"


def test_signatures_and_routing_are_the_same_in_every_process() -> None:
    code = (
        "from pipeline.stages.dedup import normalise_for_matching, signature, routing_key;"
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
    assert routing_key(TWEET) == routing_key(f"RT @x: {TWEET}")


def test_band_index_is_rebuilt_from_the_clusters() -> None:
    stores: dict[str, dict] = {name: {} for name in ("mentions", "exact", "clusters")}
    Deduplicator(**stores, bands={}).check([item("1", TWEET)])
    restarted = Deduplicator(**stores, bands={})
    assert restarted.rebuild_bands() == 1
    assert restarted.check([item("2", TWEET.replace("tres", "cuatro"))])[0].duplicate_of == "1"
