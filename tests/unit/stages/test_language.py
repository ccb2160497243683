import subprocess
import sys
import textwrap

import pytest

from pipeline.stages.language import LanguageDetector, clean_for_language


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
