"""The console's words in Spanish and English, and the reader's formats.

The catalogs are plain Python dicts (:mod:`~pipeline.desk.i18n.es`,
:mod:`~pipeline.desk.i18n.en`), one per language with the same keys: two languages and a few
hundred strings need no gettext toolchain, nothing to compile before a non-editable install
runs, and a test holds the two catalogs to the same keys and placeholders. A string that takes
values names them (``{count}``); a count picks ``KEY.one`` or ``KEY.other`` (both languages
have those two plural forms for whole numbers). Dates and numbers go through Babel
(:mod:`~pipeline.desk.i18n.formatting`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pipeline.desk.i18n import en, es

LANGUAGES: Final = ("es", "en")
CATALOGS: Final[Mapping[str, Mapping[str, str]]] = {"es": es.MESSAGES, "en": en.MESSAGES}
# each language's name in itself, for the switch
LANGUAGE_NAMES: Final = {"es": "Español", "en": "English"}


class Translator:
    """The console's strings in one language.

    >>> t = Translator("en")
    >>> t("nav.mentions"), t.plural("unit.mentions", 1, count="1")
    ('Mentions', '1 mention')
    """

    def __init__(self, language: str) -> None:
        self.language = language if language in CATALOGS else LANGUAGES[0]
        self.messages = CATALOGS[self.language]

    def __call__(self, key: str, **values: Any) -> str:
        """The string ``key``, with ``values`` put in its placeholders."""
        text = self.messages[key]
        return text.format(**values) if values else text

    def plural(self, key: str, number: int | float, **values: Any) -> str:
        """``KEY.one`` when ``number`` is 1, else ``KEY.other``.

        ``{count}`` is ``number`` unless ``values`` give it already formatted.
        """
        values.setdefault("count", number)
        return self(f"{key}.one" if number == 1 else f"{key}.other", **values)

    def has(self, key: str) -> bool:
        """True when the catalog has ``key`` (for values named by the data, like a role)."""
        return key in self.messages
