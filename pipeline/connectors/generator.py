"""Synthetic firehose: realistic multilingual mentions of the demo brands.

It is the demo's data and the benchmarks' load. Mentions come in Spanish, English,
Portuguese and French (plus some German and Italian), from a pool of authors whose follower
counts follow a heavy tail; a share are retweets ("RT @user: ...") and near-copies (a word
changed, a hashtag appended, a tracking parameter on the link). Each brand has a steady
background with a daily rhythm; on demand a *crisis* adds a burst of negative mentions about
one brand, driven by a few loud accounts and their retweets.

Event time is synthetic: ``created_at`` advances by ``1 / rate`` seconds per mention from
``start``, so an hour of traffic can be generated (and replayed) in seconds.

>>> from datetime import datetime, UTC
>>> firehose = FirehoseGenerator(seed=7, start=datetime(2026, 11, 1, tzinfo=UTC))
>>> first = next(iter(firehose.mentions(1)))
>>> sorted(first)[:4]
['author', 'created_at', 'engagement', 'id']
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pipeline.connectors.firehose_words import (
    BRAND_NAMES,
    BRAND_WEIGHTS,
    CRISIS_TEMPLATES,
    FILLERS,
    FIRST_NAMES,
    LANGUAGE_WEIGHTS,
    PLACES,
    SENTIMENT_MIX,
    TAGS,
    TEMPLATES,
)


def daily_factor(moment: datetime) -> float:
    """The share of the busiest hour's traffic the firehose carries at ``moment`` (0.3-1.0).

    The background is thinner at night (rejection-sampled), and so is a crisis running then.
    """
    hour = moment.hour + moment.minute / 60
    return 0.55 + 0.45 * math.sin(math.pi * (hour - 6) / 12) ** 2 if 6 <= hour <= 24 else 0.3


@dataclass(frozen=True, slots=True)
class CrisisPlan:
    """A burst of negative mentions about one brand, in event time relative to ``start``."""

    brand_id: str = "acme-mobile"
    start_after: timedelta = timedelta(minutes=30)
    duration: timedelta = timedelta(minutes=20)
    # extra crisis mentions per background mention of the whole firehose, at the peak
    intensity: float = 0.6
    hashtag: str = "AcmeLeak"


@dataclass(frozen=True, slots=True)
class LeadersPlan:
    """Who drives each brand's conversation, planted in the firehose (ground truth).

    Per brand, ``influencers`` authors of modest audience whose posts about it are copied
    often (``influencer_echo`` of all copies copy one of theirs); ``bots`` accounts with huge
    audiences that post often about a random brand, are never copied and get no engagement.
    Half of a brand's influencers lean positive, half negative.
    """

    influencers: int = 10
    influencer_share: float = 0.06
    influencer_echo: float = 0.5
    bots: int = 20
    bot_share: float = 0.08
    # how strongly an influencer's posts follow their leaning
    leaning: float = 0.8


@dataclass(frozen=True, slots=True)
class _Author:
    id: str
    handle: str
    followers: int


class FirehoseGenerator:
    """Seeded, endless stream of synthetic mention dicts (the raw wire format)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        start: datetime,
        rate_per_s: float = 20.0,
        crisis: CrisisPlan | None = None,
        retweet_share: float = 0.15,
        near_copy_share: float = 0.05,
        noise_share: float = 0.05,
        authors: int = 5000,
        leaders: LeadersPlan | None = None,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.random = random.Random(seed)
        self.start = start
        self.rate_per_s = rate_per_s
        self.crisis = crisis
        self.retweet_share = retweet_share
        self.near_copy_share = near_copy_share
        self.noise_share = noise_share
        self._authors = [self._make_author(index) for index in range(authors)]
        self._crisis_voices = sorted(self._authors, key=lambda a: -a.followers)[:8]
        self._recent: list[dict[str, Any]] = []
        # sentiment each recent mention was written with (copies inherit it)
        self._labels: dict[str, str] = {}
        self._sequence = 0
        # event-time slots: quiet hours skip slots, so the background follows a daily rhythm
        self._slot = 0
        self._crisis_due = 0.0
        self._crisis_slot = -1
        self._brands = list(BRAND_WEIGHTS)
        self._brand_weights = list(BRAND_WEIGHTS.values())
        self._languages = list(LANGUAGE_WEIGHTS)
        self._language_weights = list(LANGUAGE_WEIGHTS.values())
        # planted only when asked for, after the default pool: the default stream is unchanged
        self.leaders = leaders
        self.influencers: dict[str, list[_Author]] = {}
        self.bots: list[_Author] = []
        self._leanings: dict[str, str] = {}
        self._bot_ids: set[str] = set()
        self._influencer_recent: list[dict[str, Any]] = []
        self._influencer_labels: dict[str, str] = {}
        if leaders is not None:
            self._plant(leaders, authors)

    def _plant(self, plan: LeadersPlan, first_index: int) -> None:
        index = first_index
        for brand_id in self._brands:
            planted = []
            for number in range(plan.influencers):
                name = self.random.choice(FIRST_NAMES)
                planted.append(_Author(f"u{index}", f"{name}_{index}",
                                       self.random.randint(800, 30_000)))
                self._leanings[f"u{index}"] = ("positive", "negative")[number % 2]
                index += 1
            self.influencers[brand_id] = planted
        for _ in range(plan.bots):
            name = self.random.choice(("deals", "news", "promo", "alerts", "daily"))
            self.bots.append(_Author(f"u{index}", f"{name}_{index}",
                                     self.random.randint(300_000, 3_000_000)))
            self._bot_ids.add(f"u{index}")
            index += 1

    def _own_words(self, text: str) -> str:
        """``text`` with places, a time, tags and a reference of the author's own.

        With a leaders plan only: the templates are few, so without it two people writing
        the same template and filler are near-copies to dedup (character 4-grams), and
        whoever wrote it first (often a bot, posting most) would look copied by everyone
        after; real independent posts rarely collide so. The tail is long enough to keep two
        such posts under dedup's similarity threshold.
        """
        if self.leaders is None:
            return text
        pick = self.random
        return (f"{text} ({pick.choice(PLACES)} → {pick.choice(PLACES)}, "
                f"{pick.randint(0, 23)}:{pick.randint(0, 59):02d}) #{pick.choice(TAGS)}"
                f"{pick.randint(1, 999)} #{pick.choice(TAGS)}{pick.randint(1, 999)} "
                f"ref {pick.randint(0, 999_999):06d}")

    def planted_leaders(self) -> dict[str, list[str]]:
        """Each brand's planted influencers' author ids (empty without a :class:`LeadersPlan`)."""
        return {brand_id: [author.id for author in authors]
                for brand_id, authors in self.influencers.items()}

    def bot_ids(self) -> list[str]:
        """The planted bots' author ids."""
        return [author.id for author in self.bots]

    def _make_author(self, index: int) -> _Author:
        name = self.random.choice(FIRST_NAMES)
        # Pareto tail: most accounts have a few hundred followers, a handful have 100k+
        followers = int(50 * self.random.paretovariate(1.1))
        return _Author(
            id=f"u{index}", handle=f"{name}_{index}", followers=min(followers, 5_000_000),
        )

    def _event_time(self) -> datetime:
        return self.start + timedelta(seconds=self._slot / self.rate_per_s)

    def _brand_name(self, brand_id: str, lang: str) -> str:
        names = BRAND_NAMES[brand_id]
        return self.random.choice(names.get(lang, names["_"]))

    def _fill(self, template: str, lang: str, brand_id: str) -> str:
        service = self.random.choice(FILLERS["service"][lang])
        month = self.random.choice(FILLERS["month"][lang])
        return template.format(
            b=self._brand_name(brand_id, lang), service=service, month=month,
            n=self.random.randint(2, 48), tag="",
        )

    def _record(self, text: str, author: _Author, moment: datetime, lang: str) -> dict[str, Any]:
        self._sequence += 1
        mention_id = f"syn:{self._sequence}"
        reach = max(author.followers, 1)
        return {
            "id": mention_id,
            "text": text,
            "created_at": moment.isoformat(),
            "source": self.random.choice(("twitter", "twitter", "twitter", "instagram", "reddit")),
            "author": {"id": author.id, "handle": author.handle, "followers": author.followers},
            "url": f"https://social.example/{author.handle}/status/{self._sequence}",
            "lang_hint": lang if self.random.random() < 0.7 else None,
            "engagement": {
                "likes": int(self.random.expovariate(1.0) * math.log10(reach + 1) * 3),
                "reposts": int(self.random.expovariate(2.0) * math.log10(reach + 1)),
                "replies": int(self.random.expovariate(3.0) * 2),
                "quotes": 0,
            },
        }

    def _in_crisis(self, moment: datetime) -> float:
        """Crisis intensity at ``moment``: 0 outside, ramping up then down inside."""
        if self.crisis is None:
            return 0.0
        elapsed = (moment - (self.start + self.crisis.start_after)) / self.crisis.duration
        if not 0 <= elapsed <= 1:
            return 0.0
        return self.crisis.intensity * math.sin(math.pi * elapsed) ** 0.5

    def _crisis_mention(self, moment: datetime) -> dict[str, Any]:
        assert self.crisis is not None
        lang = self.random.choices(["es", "en", "pt", "fr"], [0.5, 0.25, 0.15, 0.1])[0]
        author = (
            self.random.choice(self._crisis_voices)
            if self.random.random() < 0.3 else self.random.choice(self._authors)
        )
        template = self.random.choice(CRISIS_TEMPLATES[lang])
        text = template.format(
            b=self._brand_name(self.crisis.brand_id, lang), tag=self.crisis.hashtag,
        )
        return self._record(text, author, moment, lang)

    def _planted_mention(self, moment: datetime) -> tuple[dict[str, Any], str] | None:
        """A bot's or an influencer's mention, as often as the plan says; else ``None``."""
        plan = self.leaders
        if plan is None:
            return None
        roll = self.random.random()
        if roll >= plan.bot_share + plan.influencer_share:
            return None
        lang = self.random.choices(self._languages, self._language_weights)[0]
        brand_id = self.random.choices(self._brands, self._brand_weights)[0]
        if roll < plan.bot_share:
            author = self.random.choice(self.bots)
            sentiment = "neutral"
            template = self.random.choice(TEMPLATES[lang]["neutral"])
        else:
            author = self.random.choice(self.influencers[brand_id])
            leaning = self._leanings[author.id]
            sentiment = leaning if self.random.random() < plan.leaning else "neutral"
            template = self.random.choice(TEMPLATES[lang][sentiment])
        text = self._own_words(self._fill(template, lang, brand_id))
        record = self._record(text, author, moment, lang)
        if author.id in self._bot_ids:
            record["engagement"] = {"likes": 0, "reposts": 0, "replies": 0, "quotes": 0}
        return record, sentiment

    def _background_mention(self, moment: datetime) -> tuple[dict[str, Any], str]:
        planted = self._planted_mention(moment)
        if planted is not None:
            return planted
        lang = self.random.choices(self._languages, self._language_weights)[0]
        brand_id = self.random.choices(self._brands, self._brand_weights)[0]
        sentiment = self.random.choices(list(SENTIMENT_MIX), list(SENTIMENT_MIX.values()))[0]
        text = self._own_words(
            self._fill(self.random.choice(TEMPLATES[lang][sentiment]), lang, brand_id))
        if self.random.random() < self.noise_share:
            # chatter that matches no query (the firehose is never perfectly filtered)
            text = self.random.choice(("buenos días a todos ☀️", "good morning!", "bom dia"))
            sentiment = "neutral"
        return self._record(text, self.random.choice(self._authors), moment, lang), sentiment

    def _copy_of(self, original: dict[str, Any], moment: datetime) -> dict[str, Any]:
        author = self.random.choice(self._authors)
        lang = original.get("lang_hint") or "en"
        if self.random.random() < self.retweet_share / (self.retweet_share + self.near_copy_share):
            text = f"RT @{original['author']['handle']}: {original['text']}"
        else:
            words = original["text"].split()
            edit = self.random.random()
            if edit < 0.4 and len(words) > 4:
                words[self.random.randrange(1, len(words))] = self.random.choice(
                    ("really", "muy", "très", "mesmo", "!!", "lol")
                )
                text = " ".join(words)
            elif edit < 0.7:
                text = original["text"] + " " + self.random.choice(("#fail", "#help", "👀", "+1"))
            else:
                text = original["text"] + f" https://lnk.example/x?utm_source=s{self._sequence}"
        return self._record(text, author, moment, lang)

    def mentions(self, count: int | None = None) -> Iterator[dict[str, Any]]:
        """Yield ``count`` mentions (forever when ``None``), in event-time order."""
        for record, _ in self.labelled_mentions(count):
            yield record

    def labelled_mentions(self, count: int | None = None) -> Iterator[tuple[dict[str, Any], str]]:
        """The same mentions as :meth:`mentions`, each with the sentiment it was written with.

        The label (``negative``, ``neutral`` or ``positive``) is the template's, copies carry
        their original's and crisis mentions are negative: ground truth for measuring the
        crisis detector without the sentiment model's errors.

        >>> from datetime import datetime, UTC
        >>> firehose = FirehoseGenerator(seed=7, start=datetime(2026, 11, 1, tzinfo=UTC))
        >>> [label for _, label in firehose.labelled_mentions(3)]
        ['neutral', 'positive', 'positive']
        """
        produced = 0
        while count is None or produced < count:
            moment = self._event_time()
            crisis_level = self._in_crisis(moment)
            if crisis_level and self._crisis_slot != self._slot:
                # crisis mentions come on top of the background (about ``intensity`` per
                # background mention at the peak), so a crisis raises the volume instead of
                # taking the background's place
                self._crisis_slot = self._slot
                self._crisis_due += crisis_level * daily_factor(moment)
            if self._crisis_due >= 1.0:
                self._crisis_due -= 1.0
                record = self._crisis_mention(moment)
                self._remember(record, "negative")
                produced += 1
                yield record, "negative"
                continue
            if self._recent and self.random.random() < (
                self.retweet_share + self.near_copy_share
            ):
                original = self._original_to_copy()
                record = self._copy_of(original, moment)
                label = self._labels.get(original["id"]) or self._influencer_labels[original["id"]]
            elif self.random.random() > daily_factor(moment):
                self._slot += 1
                continue
            else:
                record, label = self._background_mention(moment)
            self._remember(record, label)
            produced += 1
            self._slot += 1
            yield record, label

    def _original_to_copy(self) -> dict[str, Any]:
        """A recent mention to copy: a planted influencer's as often as the plan says."""
        if (self.leaders is not None and self._influencer_recent
                and self.random.random() < self.leaders.influencer_echo):
            return self.random.choice(self._influencer_recent)
        return self.random.choice(self._recent)

    def _remember(self, record: dict[str, Any], label: str) -> None:
        """Keep a bounded random set of recent mentions for retweets and near copies.

        A bot's mentions are never copied; a planted influencer's are also kept apart.
        """
        author_id = record["author"]["id"]
        if self.leaders is not None:
            if author_id in self._bot_ids:
                return
            if author_id in self._leanings:
                self._influencer_recent.append(record)
                self._influencer_labels[record["id"]] = label
                if len(self._influencer_recent) > 100:
                    del self._influencer_labels[self._influencer_recent.pop(0)["id"]]
        self._recent.append(record)
        self._labels[record["id"]] = label
        if len(self._recent) > 200:
            forgotten = self._recent.pop(self.random.randrange(len(self._recent)))
            del self._labels[forgotten["id"]]
