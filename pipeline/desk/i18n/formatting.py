"""Dates, times, numbers and names in the reader's locale and time zone (Babel, CLDR data).

The reader picks the language (Spanish by default) and the time zone; the region comes from the
browser's ``Accept-Language`` where it names one for that language (``es-MX`` reads ``2.345,6``
as ``2,345.6``), else the language's usual one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from datetime import timedelta
from typing import Final
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import (
    format_date,
    format_datetime,
    format_timedelta,
    get_date_format,
    get_datetime_format,
    get_time_format,
)
from babel.numbers import format_compact_decimal, format_decimal, format_percent

# the region a language is read in when the browser names none
DEFAULT_REGIONS: Final = {"es": "ES", "en": "US"}


def reader_locale(language: str, accept_language: str | None) -> Locale:
    """The locale to format for: ``language``, in the first region the browser asks for.

    >>> str(reader_locale("es", "es-MX,es;q=0.9,en;q=0.8"))
    'es_MX'
    >>> str(reader_locale("en", "es-ES,es;q=0.9")), str(reader_locale("en", "en-GB"))
    ('en_US', 'en_GB')
    """
    for tag in _accepted(accept_language or ""):
        try:
            locale = Locale.parse(tag, sep="-")
        except (ValueError, UnknownLocaleError):
            continue
        if locale.language == language and locale.territory:
            return locale
    return Locale(language, DEFAULT_REGIONS.get(language))


def _accepted(header: str) -> list[str]:
    """The language tags of an ``Accept-Language`` header, most wanted first."""
    weighted = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, quality = part.strip().partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            weight = 0.0
        if tag and tag != "*" and weight > 0:
            weighted.append((-weight, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


class LocalFormat:
    r"""Formats for one reader: their locale and time zone.

    >>> from datetime import UTC
    >>> spanish = LocalFormat(Locale("es", "ES"), ZoneInfo("Europe/Madrid"))
    >>> spanish.datetime(dt.datetime(2026, 11, 2, 9, 5, tzinfo=UTC))
    '2 nov 2026, 10:05'
    >>> spanish.number(12345.6), spanish.percent(0.1234), spanish.compact(12345)
    ('12.345,6', '12,3\xa0%', '12,3\xa0mil')
    """

    def __init__(self, locale: Locale, zone: ZoneInfo) -> None:
        self.locale = locale
        self.zone = zone
        medium_date = get_date_format("medium", locale).pattern
        short_time = get_time_format("short", locale).pattern
        self._moment = (str(get_datetime_format("medium", locale))
                        .replace("{1}", medium_date).replace("{0}", short_time))
        self._time = short_time

    @property
    def tag(self) -> str:
        """The locale as a BCP 47 tag for the browser (``es-ES``)."""
        return str(self.locale).replace("_", "-")

    def _local(self, moment: dt.datetime | str) -> dt.datetime:
        if isinstance(moment, str):
            moment = dt.datetime.fromisoformat(moment)
        return moment.astimezone(self.zone)

    def datetime(self, moment: dt.datetime | str | None) -> str:
        """A date and minute (``2 nov 2026, 10:05``); empty for None."""
        if moment is None:
            return ""
        return format_datetime(self._local(moment), self._moment, locale=self.locale)

    def date(self, moment: dt.datetime | str) -> str:
        """A date (``2 nov 2026``)."""
        return format_date(self._local(moment).date(), "medium", locale=self.locale)

    def time(self, moment: dt.datetime | str) -> str:
        """A time of day (``10:05``)."""
        return format_datetime(self._local(moment), self._time, locale=self.locale)

    def iso(self, moment: dt.datetime | str) -> str:
        """The moment as ISO 8601 in the reader's zone (for ``<time datetime>`` attributes)."""
        return self._local(moment).isoformat(timespec="seconds")

    def number(self, value: float | int | None, digits: int = 1) -> str:
        """A number with the locale's separators, at most ``digits`` decimals."""
        if value is None:
            return ""
        return format_decimal(round(value, digits), locale=self.locale)

    def percent(self, share: float | None, digits: int = 1) -> str:
        """A share (``0.123``) as a percentage (``12,3 %``; ``5 %``, not ``5,0 %``)."""
        if share is None:
            return ""
        # the locale's own pattern (``#,##0 %`` in Spanish), with up to ``digits`` decimals
        pattern = self.locale.percent_formats[None].pattern
        last = pattern.rindex("0") + 1
        if digits:
            pattern = pattern[:last] + "." + "#" * digits + pattern[last:]
        return format_percent(share, pattern, locale=self.locale)

    def compact(self, value: float | int) -> str:
        """A large count short (``12,3 mil``, ``1,2 M``)."""
        return format_compact_decimal(value, locale=self.locale, fraction_digits=1)

    def ago(self, span: timedelta) -> str:
        """How long ago (``hace 3 minutos``)."""
        return format_timedelta(-span, add_direction=True, locale=self.locale)

    def duration(self, span: timedelta) -> str:
        """A length of time (``2 horas``)."""
        return format_timedelta(span, locale=self.locale)

    def language(self, code: str | None) -> str:
        """A language's name in the reader's language (``inglés``); the code if unknown."""
        if not code:
            return ""
        name = self.locale.languages.get(code)
        return name if name else code

    def languages(self, codes: Sequence[str]) -> list[tuple[str, str]]:
        """``(code, name)`` pairs, sorted by name."""
        return sorted(((code, self.language(code)) for code in codes),
                      key=lambda pair: pair[1].casefold())
