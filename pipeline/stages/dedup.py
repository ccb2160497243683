"""Dedup stage core: exact and near-duplicate mentions, in bounded, windowed state.

Matching text: :func:`normalise_for_matching` drops a retweet prefix, @handles, URLs (so
tracking parameters do not matter), emoji and punctuation, and folds case and accents. The
original text is never touched.

- **Exact copies** share the fingerprint (BLAKE2b, 8 bytes) of the matching text.
- **Near copies** (a word changed, hashtags appended, clauses reordered): MinHash over
  character 4-grams of the matching text, 64 permutations in 16 LSH bands of 4 rows; a
  candidate from a shared band is accepted when the estimated Jaccard similarity is at least
  ``near_threshold`` (0.65, from the benchmark's sweep). The 4-grams of a whole batch are
  hashed at once with NumPy and handed to ``rensa`` (Rust MinHash) as one flat buffer, so no
  Python object is built per 4-gram: at the same quality, the fastest of rensa fed Python
  4-gram lists, a pure NumPy MinHash and ``datasketch``; a NumPy SimHash is fast too, but at
  the bit agreement that keeps hard negatives out it finds far fewer one-word edits
  (``benchmarks/README.md``, Dedup). Texts shorter than ``min_near_chars`` only match exactly.

State lives in injected ``MutableMapping`` stores with str keys and JSON-ready values, so the
agent passes Faust tables (changelog-backed: a restarted or rebalanced worker keeps its
memory) and tests or ``mentions process`` pass plain dicts:

``mentions``  mention id -> ``[first id or None, kind, similarity, seen at]``
              (idempotency: a redelivered mention gets its first verdict again and counts
              nothing)
``exact``     fingerprint -> first id
``variants``  fingerprint of a near copy's text -> ``[first id, similarity]``: a verdict memo,
              so that the next exact repeat of that variant (its retweets, a bot farm's
              copies) takes the exact-copy path instead of another near search and joins
              the same conversation with the same similarity
``clusters``  first id -> ``{"n": copies, "t": first seen, "sig": signature (base64 of 64
              big-endian uint32), "fp": fingerprint, "lsh": indexed for near matching}``
``bands``     LSH band key (int) -> first id, or a list of them (at most ``band_capacity``,
              newest last) when several conversations share the band. Derived from
              ``clusters`` (:meth:`Deduplicator.rebuild_bands`), so the agent keeps it in
              memory instead of writing 16 changelog records per conversation.

"seen at" and "first seen" are event times (the mention's ``created_at``, Unix seconds).
:meth:`Deduplicator.expire` deletes every conversation first seen before ``now - window``
and every mention record older than ``redelivery_window`` (default: the window), so memory
is bounded by one window of conversations plus one redelivery window of mention records
(the bytes per conversation are in ``benchmarks/README.md``). The agent makes
the stores durable as a journal of per-batch changes (:mod:`pipeline.stages.dedup_journal`).

Copies meet on one partition by :mod:`pipeline.stages.routing`'s keys, which use
:func:`normalise_for_matching` too.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Mapping, MutableMapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt
from rensa import RMinHash

from pipeline.event_time import epoch_seconds, parse_event_time
from pipeline.stages.brands import fold

DuplicateKind = Literal["unique", "exact", "near"]
Signatures = npt.NDArray[np.uint32]

_RETWEET = re.compile(r"^\s*RT\s+@\w+\s*:?\s*", re.IGNORECASE)
_URL_OR_HANDLE = re.compile(r"(?:https?://|www\.)\S+|@\w+")
_WORDS = re.compile(r"\w+")

NUM_PERM = 64
BANDS = 16
ROWS = NUM_PERM // BANDS
SEED = 1729
SHINGLE = 4
# chosen on the benchmark's threshold sweep (XLM-T train + val): one-word edits vs precision
NEAR_THRESHOLD = 0.65
# texts whose matching form is kept (process-wide; ~0.5 kB each for a tweet-sized text)
MATCHING_CACHE_SIZE = 50_000

# odd 64-bit constants (golden ratio and splitmix64's) for multiply-xor mixing
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def normalise_for_matching(text: str) -> str:
    """The text two copies have in common: no RT prefix, handles, URLs, emoji or punctuation.

    >>> normalise_for_matching("RT @ana: ¡Acme CAÍDO otra vez!!! 😡 https://t.co/x?utm=1")
    'acme caido otra vez'
    """
    return _words_of(_without_copy_marks(text))


def _without_copy_marks(text: str) -> str:
    """The first step of :func:`normalise_for_matching`: RT prefix, handles and URLs gone."""
    return _URL_OR_HANDLE.sub(" ", _RETWEET.sub("", text))


def _words_of(text: str) -> str:
    """The rest of :func:`normalise_for_matching`: folded words, single-spaced."""
    return " ".join(_WORDS.findall(fold(text)))


def fingerprint(matching_text: str) -> str:
    """Exact-copy key of a normalised text (16 hex digits)."""
    return hashlib.blake2b(matching_text.encode(), digest_size=8).hexdigest()


@functools.lru_cache(maxsize=MATCHING_CACHE_SIZE)
def matching_and_fingerprint(text: str) -> tuple[str, str]:
    """The matching text of a mention's text and its fingerprint, cached by the text.

    One post retweeted by many reads the same, so most of a firehose is texts seen moments
    ago; normalising costs ~7 us, a cache hit well under one. A new text whose copy marks
    (RT prefix, handles, URLs) were all that set it apart is a second, cheaper hit.
    """
    return _matching_without_copy_marks(_without_copy_marks(text))


@functools.lru_cache(maxsize=MATCHING_CACHE_SIZE)
def _matching_without_copy_marks(text: str) -> tuple[str, str]:
    """:func:`matching_and_fingerprint` of a text without its copy marks, cached by it.

    Other authors' retweets of one post and its links with other tracking codes differ
    only in those marks: among 100k firehose mentions, 22.7k distinct texts and 8.8k
    without their marks. Blanking them is ~4 us of the ~11 us a new text costs here; the
    words, the folding and the hash are the rest.
    """
    matching = _words_of(text)
    return matching, fingerprint(matching)


def _finalise(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    # splitmix64's finaliser: every input bit flips about half of the output bits
    values = values ^ (values >> np.uint64(30))
    values = values * _MIX1
    values = values ^ (values >> np.uint64(27))
    values = values * _MIX2
    return values ^ (values >> np.uint64(31))


def shingle_hashes(
    matching_texts: Sequence[str],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """64-bit hashes of the character 4-grams of each text, as one flat array and row offsets.

    Row ``i`` is ``hashes[offsets[i]:offsets[i + 1]]``; a non-empty text shorter than four
    characters is one (NUL-padded) gram, an empty text has none. The hashes are arithmetic on
    code points, so every process (whatever its ``PYTHONHASHSEED``) gets the same ones.
    """
    padded_texts = [
        text.ljust(SHINGLE, "\0") if 0 < len(text) < SHINGLE else text for text in matching_texts
    ]
    lengths = np.fromiter((len(text) for text in padded_texts), dtype=np.int64,
                          count=len(padded_texts))
    points = np.frombuffer("".join(padded_texts).encode("utf-32-le"), dtype=np.uint32)
    total = len(points)
    # padding keeps the grams that start in a text's last three characters in bounds; those
    # grams run into the next text and are dropped below
    extended = np.concatenate([points, np.zeros(SHINGLE - 1, dtype=np.uint32)]).astype(np.uint64)
    mixed = extended[:total].copy()
    for shift in range(1, SHINGLE):
        mixed = (mixed * _GOLDEN) ^ extended[shift: shift + total]
    counts = np.maximum(lengths - (SHINGLE - 1), 0)
    text_starts = np.cumsum(lengths) - lengths
    row_starts = np.cumsum(counts) - counts
    # position of every kept gram: its text's start plus its rank within the text
    keep = np.repeat(text_starts - row_starts, counts) + np.arange(int(counts.sum()))
    hashes = _finalise(mixed[keep])
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint64)
    return hashes, offsets


def signatures(matching_texts: Sequence[str]) -> Signatures:
    """MinHash signatures (one row of ``NUM_PERM`` uint32 per text) of normalised texts.

    The same in every process; an empty text gets a row of 0xFFFFFFFF (it matches nothing,
    see ``min_near_chars``).
    """
    if not matching_texts:
        return np.zeros((0, NUM_PERM), dtype=np.uint32)
    hashes, offsets = shingle_hashes(matching_texts)
    matrix = RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, NUM_PERM, SEED)
    return np.array(matrix.to_rows(), dtype=np.uint32)


def signature(matching_text: str) -> list[int]:
    """MinHash signature (``NUM_PERM`` values) of one normalised text."""
    return [int(value) for value in signatures([matching_text])[0]]


def similarity(left: Sequence[int] | Signatures, right: Sequence[int] | Signatures) -> float:
    """Estimated Jaccard similarity of two signatures."""
    return float(np.count_nonzero(np.asarray(left) == np.asarray(right))) / NUM_PERM


def band_keys(rows: Signatures) -> npt.NDArray[np.uint64]:
    """LSH band keys (``BANDS`` per signature row); the band number is mixed into the key."""
    grouped = rows.reshape(len(rows), BANDS, ROWS).astype(np.uint64)
    keys = grouped[:, :, 0]
    for row in range(1, ROWS):
        keys = (keys * _GOLDEN) ^ grouped[:, :, row]
    keys = keys ^ (np.arange(BANDS, dtype=np.uint64) << np.uint64(56))
    return _finalise(keys)


def band_keys_of(sig: Sequence[int] | Signatures) -> list[int]:
    """The LSH band keys of one signature."""
    row = np.asarray(sig, dtype=np.uint32).reshape(1, NUM_PERM)
    return [int(key) for key in band_keys(row)[0]]


def encode_signature(sig: Signatures) -> str:
    """Store form of a signature: base64 of its values as big-endian uint32 (344 characters)."""
    return base64.b64encode(sig.astype(">u4").tobytes()).decode("ascii")


def decode_signature(stored: str | Sequence[int]) -> Signatures:
    """A signature back from its store form (base64; hex or a list of ints in older entries)."""
    if isinstance(stored, str):
        raw = bytes.fromhex(stored) if len(stored) == 8 * NUM_PERM else base64.b64decode(stored)
        return np.frombuffer(raw, dtype=">u4").astype(np.uint32)
    return np.asarray(stored, dtype=np.uint32)


# DedupInput and DedupVerdict are NamedTuples, not frozen dataclasses: two are built per
# mention, and a frozen dataclass's __init__ (object.__setattr__ per field) cost ~1.1 us
# here against ~0.4 us for a NamedTuple, just as immutable.
class DedupInput(NamedTuple):
    """What the dedup stage needs of a mention: ``seen_at`` is its event time, Unix seconds."""

    mention_id: str
    text: str
    seen_at: float


class DedupVerdict(NamedTuple):
    """``duplicate_of`` is the first copy's id (None when this is the first).

    ``copy_count`` is the first copy's running count of copies, this one included.
    """

    duplicate_of: str | None
    kind: DuplicateKind
    copy_count: int
    similarity: float | None = None


def apply_verdict(mention: dict[str, Any], verdict: DedupVerdict) -> None:
    """Write a verdict onto a mention record (``duplicate_of``, ``copy_count``...)."""
    mention.update(verdict_keys(verdict))


def verdict_keys(verdict: DedupVerdict) -> dict[str, Any]:
    """The keys a verdict adds to a mention record, in order (similarity for copies only)."""
    keys: dict[str, Any] = {
        "duplicate_of": verdict.duplicate_of, "duplicate_kind": verdict.kind,
        "copy_count": verdict.copy_count,
    }
    if verdict.similarity is not None:
        keys["duplicate_similarity"] = verdict.similarity
    return keys


def mark_duplicates(
    deduplicator: Deduplicator, mentions: Sequence[dict[str, Any]],
) -> tuple[list[DedupVerdict], datetime | None]:
    """Check a micro-batch of mention records and write each verdict onto its record.

    Returns the verdicts and the batch's newest event time (None for an empty batch), which
    the caller's expiry runs at. Every mention needs a readable event time: one without
    raises :class:`~pipeline.schema.InvalidMention` before the deduplicator is touched (a
    batch that may hold such goes through
    :func:`~pipeline.event_time.split_by_event_time` first, and its rejects to the dead
    letters).
    """
    times = [parse_event_time(mention.get("created_at")) for mention in mentions]
    inputs = [DedupInput(str(mention["id"]), str(mention["text"]), created.timestamp())
              for mention, created in zip(mentions, times, strict=True)]
    verdicts = deduplicator.check(inputs)
    for mention, verdict in zip(mentions, verdicts, strict=True):
        apply_verdict(mention, verdict)
    return verdicts, max(times, default=None)


class _RoutedFields(msgspec.Struct, gc=False):
    """What dedup reads of a routed mention; the verdict keys only to see that none is there."""

    id: str
    text: str
    created_at: str
    ingested_at: float | None = None
    duplicate_of: Any = msgspec.UNSET
    duplicate_kind: Any = msgspec.UNSET
    copy_count: Any = msgspec.UNSET
    duplicate_similarity: Any = msgspec.UNSET


_ROUTED_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
# the whole array in one call: decoding item by item cost 1.5 us per mention here, 0.65 this way
_ROUTED_FIELDS = msgspec.json.Decoder(list[_RoutedFields])


class _VerdictKeys(msgspec.Struct, gc=False, omit_defaults=True):
    """The keys :func:`verdict_keys` makes, in its order (no similarity for a first copy)."""

    duplicate_of: str | None
    duplicate_kind: DuplicateKind
    copy_count: int
    duplicate_similarity: float | None = None


_VERDICT_KEYS_ENCODER = msgspec.json.Encoder()
_COMMA = ord(",")


class EncodedVerdicts(NamedTuple):
    """A micro-batch marked by :func:`mark_encoded_duplicates`, each mention still encoded."""

    verdicts: list[DedupVerdict]
    newest: datetime | None
    mention_ids: list[str]
    # each mention's JSON object with its verdict's keys appended, as apply_verdict would
    encoded: list[bytearray]
    ingested_at: list[float | None]
    # each mention's event time, Unix seconds
    event_times: npt.NDArray[np.float64]


def mark_encoded_duplicates(
    deduplicator: Deduplicator, micro_batch: bytes,
) -> EncodedVerdicts | None:
    """:func:`mark_duplicates` on an encoded micro-batch, without decoding the mentions whole.

    Only ``id``, ``text``, ``created_at`` and ``ingested_at`` of each mention are decoded; the
    verdict is appended to the mention's own bytes. A mention decoded whole is ~30 Python
    objects, and decoding it was the largest part of the dedup hop's own cost (measured:
    see benchmarks/README.md). None, with the deduplicator untouched, when the batch is
    not in the usual shape (not a JSON array of objects, a field of another type, an
    unreadable time, verdict keys already there): the caller then decodes it whole, sets
    the mentions whose time does not read aside, and calls :func:`mark_duplicates`.
    """
    try:
        items = _ROUTED_ITEMS.decode(micro_batch)
        fields = _ROUTED_FIELDS.decode(micro_batch)
    except msgspec.MsgspecError:
        return None
    event_times = epoch_seconds([item.created_at for item in fields])
    if np.isnan(event_times).any():
        return None
    unset = msgspec.UNSET
    for item in fields:
        if not (item.duplicate_of is item.duplicate_kind is item.copy_count
                is item.duplicate_similarity is unset):
            return None
    verdicts = deduplicator.check([
        DedupInput(item.id, item.text, seen_at)
        for item, seen_at in zip(fields, event_times.tolist(), strict=True)
    ])
    encoded = []
    encode_into = _VERDICT_KEYS_ENCODER.encode_into
    for raw_item, verdict in zip(items, verdicts, strict=True):
        # The verdict's keys go over the object's closing brace (msgspec's Raw ends there):
        # encoded from a struct (0.7 us here, against 1.1 us for verdict_keys' dict and
        # orjson; both write a float's shortest round-trip form) straight into a copy of the
        # mention's bytes, whose "{" then becomes the comma. Slicing and joining bytes
        # instead made four more copies: 0.3-0.5 us a mention more.
        encoded_mention = bytearray(raw_item)
        end = len(encoded_mention) - 1
        encode_into(_VerdictKeys(*verdict), encoded_mention, end)
        encoded_mention[end] = _COMMA
        encoded.append(encoded_mention)
    newest = datetime.fromtimestamp(event_times.max(), UTC) if event_times.size else None
    return EncodedVerdicts(
        verdicts, newest, [item.id for item in fields], encoded,
        [item.ingested_at for item in fields], event_times,
    )


class Deduplicator:
    """Exact and near-duplicate detection over injected stores (see the module docstring)."""

    def __init__(
        self,
        *,
        window: timedelta = timedelta(hours=24),
        near_threshold: float = NEAR_THRESHOLD,
        min_near_chars: int = 20,
        band_capacity: int = 8,
        redelivery_window: timedelta | None = None,
        mentions: MutableMapping[str, Any] | None = None,
        exact: MutableMapping[str, Any] | None = None,
        clusters: MutableMapping[str, Any] | None = None,
        variants: MutableMapping[str, Any] | None = None,
        bands: MutableMapping[Any, Any] | None = None,
    ) -> None:
        self.window = window
        self.near_threshold = near_threshold
        self.min_near_chars = min_near_chars
        self.band_capacity = band_capacity
        # a mention's own record only guards against redelivery, which comes within minutes
        # of the first delivery: a shorter window here keeps one entry per mention for that
        # long instead of for the whole window
        self.redelivery_window = window if redelivery_window is None else redelivery_window
        self.mentions: MutableMapping[str, Any] = {} if mentions is None else mentions
        self.exact: MutableMapping[str, Any] = {} if exact is None else exact
        self.clusters: MutableMapping[str, Any] = {} if clusters is None else clusters
        self.variants: MutableMapping[str, Any] = {} if variants is None else variants
        self.bands: MutableMapping[Any, Any] = {} if bands is None else bands
        # first id -> decoded signature (a cache of clusters[first_id]["sig"])
        self._signatures: dict[str, Signatures] = {}

    def check(self, batch: Sequence[DedupInput]) -> list[DedupVerdict]:
        """Verdicts for a batch, in order; later items see earlier ones of the same batch."""
        if not batch:
            return []
        matched = [matching_and_fingerprint(item.text) for item in batch]
        # a text that a conversation or a memoised variant already explains is an exact
        # repeat and needs no MinHash signature; on a retweet-heavy firehose that is most
        # of them. The stores only grow within a batch, so what is explained here stays so.
        known = [self._explained(print_) for _text, print_ in matched]
        unexplained = [index for index, explained in enumerate(known) if explained is None]
        sigs = signatures([matched[index][0] for index in unexplained])
        keys = band_keys(sigs).tolist()
        signed: list[tuple[Signatures, list[int]] | None] = [None] * len(batch)
        for row, index in enumerate(unexplained):
            signed[index] = sigs[row], keys[row]
        return [
            self._check_one(item, text, print_, known[index], signed[index])
            for index, (item, (text, print_)) in enumerate(zip(batch, matched, strict=True))
        ]

    def _explained(self, print_: str) -> tuple[str, DuplicateKind, float] | None:
        """The conversation (first id, kind, similarity) a text's fingerprint already has."""
        first_id = self.exact.get(print_)
        if first_id is not None and first_id in self.clusters:
            return first_id, "exact", 1.0
        variant = self.variants.get(print_)
        if variant is not None and variant[0] in self.clusters:
            return variant[0], "near", variant[1]
        return None

    def _verdict_again(self, item: DedupInput, stored: list[Any]) -> DedupVerdict:
        first_id, kind, score, _seen = stored
        cluster = self.clusters.get(first_id or item.mention_id)
        count = int(cluster["n"]) if cluster else 1
        return DedupVerdict(first_id, kind, count, score)

    def _check_one(
        self, item: DedupInput, matching: str, print_: str,
        known: tuple[str, DuplicateKind, float] | None,
        signed: tuple[Signatures, list[int]] | None,
    ) -> DedupVerdict:
        """The verdict of one item.

        ``known`` is what explained its text before the batch; ``signed`` is its signature
        and band keys when nothing did.
        """
        stored = self.mentions.get(item.mention_id)
        if stored is not None:
            return self._verdict_again(item, stored)
        own = self.clusters.get(item.mention_id)
        if own is not None:
            # a first copy redelivered after its record expired: still not its own copy
            return DedupVerdict(None, "unique", int(own["n"]), None)
        seen_at = item.seen_at
        if known is None:
            # an earlier item of this batch may have started this text's conversation
            known = self._explained(print_)
        if known is not None:
            return self._record_copy(item, known[0], known[1], known[2], seen_at)
        if signed is None:
            raise AssertionError("check() signs every text that was not explained")
        sig, keys = signed
        indexed = len(matching) >= self.min_near_chars
        if indexed:
            # one lookup per band serves both the search and, for a new conversation, the
            # insert: the index is the hot path of a mostly-unique firehose
            members = [self.bands.get(key) for key in keys]
            best = self._best_near(sig, members)
            if best is not None:
                score = round(best[0], 4)
                self.variants[print_] = [best[1], score]
                return self._record_copy(item, best[1], "near", score, seen_at)
        # a new conversation: it becomes the first copy of its cluster
        self.exact[print_] = item.mention_id
        self.clusters[item.mention_id] = {
            "n": 1, "t": seen_at, "sig": encode_signature(sig), "fp": print_, "lsh": indexed,
        }
        if indexed:
            self._index(item.mention_id, keys, members)
        self.mentions[item.mention_id] = [None, "unique", None, seen_at]
        return DedupVerdict(None, "unique", 1, None)

    def _best_near(
        self, sig: Signatures, members: Sequence[str | list[str] | None],
    ) -> tuple[float, str] | None:
        candidates: set[str] = set()
        for band in members:
            if band is None:
                continue
            if isinstance(band, str):
                candidates.add(band)
            else:
                candidates.update(band)
        best: tuple[float, str] | None = None
        best_time = 0.0
        for candidate in candidates:
            cluster = self.clusters.get(candidate)
            if cluster is None:
                continue
            score = similarity(sig, self._signature_of(candidate, cluster))
            # ties go to the earlier first copy, so the verdict does not depend on set order
            if score >= self.near_threshold and (
                best is None or score > best[0] or (score == best[0] and cluster["t"] < best_time)
            ):
                best, best_time = (score, candidate), cluster["t"]
        return best

    def _signature_of(self, first_id: str, cluster: Mapping[str, Any]) -> Signatures:
        # decoded signatures, kept beside the store: decoding base64 on every comparison was
        # the largest cost of a near-copy check. A conversation's signature never changes.
        sig = self._signatures.get(first_id)
        if sig is None:
            sig = self._signatures[first_id] = decode_signature(cluster["sig"])
        return sig

    def _index(
        self, first_id: str, keys: Sequence[int],
        members: Sequence[str | list[str] | None] | None = None,
    ) -> None:
        # most bands hold one conversation: a bare id there instead of a one-item list saves
        # an allocation per band and about half of the index's memory
        bands, capacity = self.bands, self.band_capacity
        for position, key in enumerate(keys):
            band = bands.get(key) if members is None else members[position]
            if band is None:
                bands[key] = first_id
            elif isinstance(band, str):
                bands[key] = [band, first_id]
            else:
                band.append(first_id)
                if len(band) > capacity:
                    del band[0]

    def rebuild_bands(self) -> int:
        """Rebuild the LSH band index from the clusters store; return how many were indexed."""
        for key in list(self.bands.keys()):
            del self.bands[key]
        ordered = sorted(
            ((first_id, cluster) for first_id, cluster in self.clusters.items()
             if cluster.get("lsh") and cluster.get("sig")),
            key=lambda item: item[1]["t"],
        )
        if not ordered:
            return 0
        # one NumPy pass over every signature: a restart rebuilds ~10^5 conversations
        rows = np.stack([decode_signature(cluster["sig"]) for _id, cluster in ordered])
        for (first_id, _cluster), keys in zip(ordered, band_keys(rows).tolist(), strict=True):
            self._index(first_id, keys)
        return len(ordered)

    def _record_copy(
        self, item: DedupInput, first_id: str, kind: DuplicateKind, score: float, seen_at: float,
    ) -> DedupVerdict:
        cluster = dict(self.clusters[first_id])
        cluster["n"] = int(cluster["n"]) + 1
        # reassigning (not mutating) the value is what makes a Faust table log the change
        self.clusters[first_id] = cluster
        self.mentions[item.mention_id] = [first_id, kind, score, seen_at]
        return DedupVerdict(first_id, kind, cluster["n"], score)

    def expire(self, now: datetime) -> int:
        """Forget everything first seen before ``now - window``; return how many entries.

        Copies of an expired conversation that arrive later start a new one. Mention records
        (the idempotency guard) go after ``redelivery_window``.
        """
        horizon = (now - self.window).timestamp()
        redelivery_horizon = (now - self.redelivery_window).timestamp()
        removed = 0
        old_clusters = [key for key, cluster in self.clusters.items() if cluster["t"] < horizon]
        for first_id in old_clusters:
            cluster = self.clusters.pop(first_id)
            self._signatures.pop(first_id, None)
            if self.exact.get(cluster["fp"]) == first_id:
                del self.exact[cluster["fp"]]
            removed += 1
        old_mentions = [
            key for key, value in self.mentions.items() if value[3] < redelivery_horizon
        ]
        for mention_id in old_mentions:
            del self.mentions[mention_id]
            removed += 1
        gone = set(old_clusters)
        if gone:
            # a variant memo goes with its conversation
            for print_ in [key for key, (first_id, _score) in self.variants.items()
                           if first_id in gone]:
                del self.variants[print_]
                removed += 1
            for key in list(self.bands.keys()):
                band = self.bands[key]
                if isinstance(band, str):
                    if band in gone:
                        del self.bands[key]
                    continue
                kept = [first_id for first_id in band if first_id not in gone]
                if not kept:
                    del self.bands[key]
                elif len(kept) != len(band):
                    self.bands[key] = kept
        return removed
