import re
import subprocess
import sys
import textwrap

import pytest

from pipeline.stages import language
from pipeline.stages.language import (
    LanguageDetector,
    clean_for_language,
    romanised_hindi_evidence,
)


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    loaded = LanguageDetector(["ar", "de", "en", "es", "fr", "hi", "it", "pt"])
    loaded.warm_up()
    return loaded


def test_cleaning_removes_what_is_not_language() -> None:
    assert clean_for_language("RT @ana: Sooooo happy!!! 😍 #NuevoDía http://t.co/x") == (
        "Soo happy NuevoDía"
    )
    assert clean_for_language("&amp; 100% @x www.example.com") == ""
    # scrapes such as XLM-T leave a bare "http" where the link was
    assert clean_for_language("vendo casa http bonita https//x") == "vendo casa bonita"
    assert clean_for_language("Goooool!!! 3-0 ⚽⚽⚽") == "Gool"
    assert clean_for_language("c'est l\u2019été") == "c'est l\u2019été"


def test_ascii_text_is_cleaned_as_any_other_text() -> None:
    """ASCII text takes a byte-wise path; appending " é" sends the same text the other way."""
    from datetime import UTC, datetime

    from pipeline.connectors.generator import FirehoseGenerator

    every_character = [f"ab{chr(code)}cd {chr(code) * 3}e{chr(code)}" for code in range(128)]
    firehose = [mention["text"] for mention in FirehoseGenerator(
        seed=3, start=datetime(2026, 11, 2, tzinfo=UTC)).mentions(3000)]
    texts = [*every_character, *(text for text in firehose if text.isascii())]
    assert len(texts) > 1000
    for text in texts:
        general = clean_for_language(text + " é")
        assert (clean_for_language(text) + " é").strip() == general, text


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Llevo tres horas sin internet con mi compañía, qué vergüenza", "es"),
        ("Worst customer service ever, still waiting for my refund", "en"),
        ("Estou sem internet há três horas, que absurdo", "pt"),
        ("Toujours pas de réseau depuis ce matin, c'est honteux", "fr"),
        ("Seit Stunden kein Internet, das ist eine Frechheit", "de"),
        ("Da tre ore senza connessione, vergognoso davvero", "it"),
        ("الخدمة سيئة جدا ولا أحد يرد على الهاتف", "ar"),
        ("yaar kya hua, aaj bhi network nahi hai", "hi"),
        ("RT @user: ¡Muy contento con el nuevo móvil! 😍 http://t.co/abc", "es"),
    ],
)
def test_known_languages(detector: LanguageDetector, text: str, lang: str) -> None:
    guess = detector.detect(text)
    assert guess.lang == lang
    assert 0.0 < guess.score <= 1.0


@pytest.mark.parametrize("text", ["", "   ", "😍😍😍", "@ana http://t.co/x", "12345 !!!", "ok"])
def test_too_little_language_is_und(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text).lang == "und"


def test_romanised_hindi_needs_more_than_one_shared_short_word(
    detector: LanguageDetector,
) -> None:
    assert romanised_hindi_evidence(["kya", "hua", "aaj", "bhi", "nahi"]) == (5, 0)
    assert romanised_hindi_evidence(["ko", "ki", "ka"]) == (0, 3)
    # "ki" and "se" are Hindi words too, but this is Spanish and fastText is sure of it
    assert detector.detect("no sé qué pasa con la ki de este equipo, se cae siempre").lang == "es"
    assert detector.detect("bhai ye movie dekhne ka plan hai kal").lang == "hi"


def test_romanised_hindi_is_not_answered_when_hindi_is_not_configured() -> None:
    guess = LanguageDetector(["en", "es"]).detect("yaar kya hua, aaj bhi network nahi hai")
    assert guess.lang in {"en", "es", "und"}


def test_unknown_second_opinion_is_refused() -> None:
    with pytest.raises(ValueError, match="second opinions"):
        LanguageDetector(["en"], second_opinions=["langdetect"])
    with pytest.raises(ValueError, match="at least one"):
        LanguageDetector([])


def test_a_language_lingua_does_not_know_only_loses_its_vote() -> None:
    # lingua has no Galician model: it votes among the others, fastText still knows "gl"
    detector = LanguageDetector(["gl", "es", "pt"], confident=1.0)
    guesses = detector.detect_batch(["Bos días a todos, que tal estades hoxe pola mañá", "hola"])
    assert guesses[0].lang in {"gl", "es", "pt"}
    assert guesses[1].lang in {"gl", "es", "pt", "und"}


def test_py3langid_second_opinion() -> None:
    pytest.importorskip("py3langid")
    detector = LanguageDetector(["es", "pt", "en"], confident=1.0,
                                second_opinions=["py3langid", "lingua"])
    assert detector.detect("Muito obrigado pelo atendimento de hoje").lang == "pt"


def test_answers_stay_inside_the_configured_languages() -> None:
    only_two = LanguageDetector(["es", "pt"])
    answers = {g.lang for g in only_two.detect_batch([
        "Worst customer service ever, still waiting", "Muy contento con el servicio",
        "Muito satisfeito com o atendimento",
    ])}
    assert answers <= {"es", "pt", "und"}
    assert {"es", "pt"} <= answers


def test_batch_equals_one_at_a_time(detector: LanguageDetector) -> None:
    texts = ["hola a todos, qué tal", "good morning everyone", "", "bom dia pessoal"]
    assert detector.detect_batch(texts) == [detector.detect(text) for text in texts]


def test_copies_are_answered_from_the_cache_with_the_same_guess() -> None:
    detector = LanguageDetector(["en", "es", "fr"], cache_size=2)
    original = "Llevo tres horas sin internet, vergüenza de servicio"
    first, copy = detector.detect_batch([original, f"RT @ana: {original} https://t.co/x"])
    assert copy == first and first.lang == "es"
    uncached = LanguageDetector(["en", "es", "fr"], cache_size=0)
    assert uncached.detect(original) == first
    detector.detect_batch(["the service is down again", "le service est encore en panne"])
    assert len(detector._cache) == 2
    assert len(detector._denoised_cache) == 2


def test_copies_that_differ_only_in_noise_skip_the_cleaning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    detector = LanguageDetector(["en", "es", "fr"])
    cleaned: list[str] = []
    real_letters_only = language._letters_only

    def counting_letters_only(text: str) -> str:
        cleaned.append(text)
        return real_letters_only(text)

    monkeypatch.setattr(language, "_letters_only", counting_letters_only)
    post = "Llevo tres horas sin internet, vergüenza de servicio"
    copies = [f"RT @ana: {post}", f"RT @bob: {post}", f"RT @ana: {post}",
              f"RT @eva: {post} https://t.co/x?utm=1", f"RT @eva: {post} https://t.co/y?utm=2"]
    guesses = detector.detect_batch([*copies, f"{post}!!!"])
    assert len(set(guesses)) == 1 and guesses[0].lang == "es"
    # one cleaning per text that still differs once its noise is blanked
    assert len(cleaned) == 3
    assert [real_letters_only(text) for text in cleaned] == [post.replace(",", "")] * 3


@pytest.mark.parametrize("text", [
    "RT @ana: Sooooo happy!!! 😍 #NuevoDía http://t.co/x", "a   b\n\n\nc\u00a0\u00a0\u00a0d",
    "Goooool!!! 3-0 ⚽⚽⚽", "RT @a: RT @b:   ...   zzz", "\t\t\tnoooo   way\u2003\u2003\u2003",
])
def test_runs_of_whitespace_are_left_to_the_split(text: str) -> None:
    # _REPEATS skips whitespace; collapsing its runs first, as any other repeat, changes nothing
    every_repeat = re.sub(r"(.)\1\1+", r"\1\1", language._without_noise(text))
    assert language.clean_for_language(text) == " ".join(
        language._letters_only(every_repeat).split())


def test_works_without_any_network() -> None:
    # a fresh interpreter where opening any socket raises: loading and detecting must not
    # try to download anything
    script = textwrap.dedent("""
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network disabled in this test")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from pipeline.stages.language import LanguageDetector
        detector = LanguageDetector(["es", "en", "pt", "fr"])
        detector.warm_up()
        print(detector.detect("La fibra lleva caída toda la mañana").lang)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        env={"PATH": "", "HF_HUB_OFFLINE": "1", "HOME": "/nonexistent"}, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "es"
