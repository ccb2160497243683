"""The Hindi rewrite keeps English, tags and emoticons, and sends only Hindi words on."""

from __future__ import annotations

from models.hindi_roman_probe import english_lexicon, rewrite, words


def fake_xlit(word: str) -> str:
    """Marks what would be transliterated, so the test sees exactly which words went."""
    return f"<{word}>"


ENGLISH = ["the match is good", "the match was good", "is it good", "i love it", "i love it"]
HINDI = ["match bahut good tha", "yeh match hai", "kya match hai"]


def test_words_skip_handles_tags_links_and_emoticons() -> None:
    assert words("@user #tag Kya hua :p http://t.co/x ok!") == ["kya", "hua", "ok"]


def test_lexicon_keeps_english_words_seen_twice_and_not_mostly_hindi() -> None:
    lexicon = english_lexicon(ENGLISH, HINDI)
    assert {"the", "match", "good", "is", "love", "it", "i"} <= lexicon
    assert "was" not in lexicon  # seen once
    assert "hai" not in lexicon and "bahut" not in lexicon


def test_lexicon_drops_words_far_more_frequent_in_hindi() -> None:
    english = ["to go home", "to be fair"] + ["home is good"] * 50
    hindi = ["ghar to jao", "to kya", "to phir", "to sahi"]
    assert "to" not in english_lexicon(english, hindi)
    assert "me" not in english_lexicon(["give me it", "tell me it"], ["kuch"])  # a homograph


def test_rewrite_transliterates_hindi_words_only() -> None:
    lexicon = english_lexicon(ENGLISH, HINDI)
    assert rewrite("yeh match bahut good tha :p #ind", lexicon, fake_xlit) == (
        "<yeh> match <bahut> good <tha> :p #ind")


def test_rewrite_squeezes_elongations_and_keeps_punctuation() -> None:
    assert rewrite("yaaaar kya!!", frozenset(), fake_xlit) == "<yaar> <kya>!!"


def test_rewrite_leaves_english_tweets_whole() -> None:
    lexicon = english_lexicon(ENGLISH, HINDI)
    tweet = "the match is good ,  i love it"
    assert rewrite(tweet, lexicon, fake_xlit) == tweet
    assert rewrite("  ", lexicon, fake_xlit) == "  "
