"""The cues of a mention that needs an answer, per language: what the reply head reads.

Each cue is a count found by one regex pass over the folded text (case and accents off,
:func:`pipeline.text.fold`), so the lexicons are written without accents. A language without
its own lexicon (or ``und``) reads every language's: the cue words barely collide across
the languages listed here. ``asks_audience`` (someone asked to answer: "alguien", "anyone",
"do you think") and ``rhetorical`` (openers that usually vent: "por qué", "who cares") tell
a question meant to be answered from one that is not, the commonest miss of the first head.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Final

import numpy as np

from pipeline.text import fold

# Per language and cue, the alternatives of one regex (folded); matched on word boundaries.
_LEXICONS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "es": {
        "interrogative": (
            "que", "como", "cuando", "donde", "adonde", "por que", "porque", "quien", "quienes",
            "a que", "de que", "en que", "para que", "a quien", "con quien", "de donde",
            "por donde", "hasta cuando", "desde cuando",
            "cual", "cuales", "cuanto", "cuanta", "cuantos", "cuantas", "alguien sabe",
            "sabes", "sabeis", "saben", "hay", "tienes", "teneis", "tienen", "puedo", "se puede",
            "vamos", "vas", "vienes"),
        "complaint": (
            "no funciona", "no funcionan", "ya no funciona", "no va", "ya no va", "no me deja",
            "no deja", "no responde", "no me llega", "no ha llegado", "no llega", "no carga",
            "se cayo", "sin internet", "sin servicio", "sin senal", "sin luz", "caido", "caida",
            "pesimo", "pesima", "fatal servicio", "mal servicio", "vergonzoso", "verguenza",
            "estafa", "estafad[oa]", "timo", "me cobra\\w*", "cobrado", "cobran", "lamentable",
            "llevo \\w+ (?:dias|horas|semanas|meses)", "esperando", "todavia no", "aun no",
            "otra vez", "de nuevo",
            "error", "reclamacion", "queja", "decepcion\\w*", "harto de", "harta de",
            "no conecta", "no han llegado", "no me ha llegado", "no me llego", "no enciende",
            "no se (?:me )?enciende", "se queda pillad[oa]", "se cuelga", "se retrasa",
            "retrasad[oa]", "cancelad[oa]", "cancelaron", "suspendid[oa]", "declinad[oa]",
            "no me dieron"),
        "request": (
            "por favor", "porfa", "porfavor", "plis", "ayuda", "aiuda", "ayudame", "ayudadme",
            "ayudarme", "podeis ayudarme", "me podrian", "me podeis", "me puedes", "podrias",
            "podriais", "necesito", "necesitamos", "sigueme", "seguirme", "me sigues",
            "mensaje directo", "md", "dm", "contactar", "contacto", "llamame", "escribeme",
            "mandame", "enviame", "devolucion", "reembolso", "devuelvan",
            "avisame", "solucion\\w*", "arreglen"),
        "thanks": (
            "gracias", "muchas gracias", "mil gracias", "agradecid[oa]s?", "agradezco",
            "se agradece", "enhorabuena", "felicidades", "felicitaciones", "feliz cumpleanos",
            "bravo"),
        "positive": (
            "excelente", "genial", "geniales", "buenisim[oa]", "maravillos[oa]", "perfect[oa]",
            "precios[oa]", "hermos[oa]", "me encanta", "me encantan", "encantad[oa]", "amo",
            "lo mejor", "la mejor", "el mejor", "increible", "bonit[oa]s?", "gran", "grande",
            "recomiendo"),
        "second_person": (
            "tu", "te", "ti", "vos", "usted", "ustedes", "vosotros", "vosotras", "os",
            "tienes", "teneis", "tienen", "puedes", "podeis", "pueden", "sabes", "vas", "estas"),
        "service": (
            "app", "aplicacion", "servicio", "atencion", "cliente", "clientes", "internet",
            "wifi", "movil", "celular", "pedido", "envio", "vuelo", "tienda", "banco",
            "tarjeta", "factura", "cuenta", "web", "pagina", "producto", "precio", "linea",
            "senal", "compra", "compre", "pague", "servidor", "actualizacion", "entrega"),
        "asks_audience": (
            "alguien", "alguno", "alguna", "quien se viene", "quien viene", "quien va",
            "quien quiere", "os apetece", "te apetece", "vienes", "venis", "vendras",
            "vendreis", "sabeis", "sabes si", "sabeis si", "me recomendais",
            "me recomiendan", "recomendais", "que opinais", "que opinan", "que os parece",
            "que te parece", "que pensais", "tienes", "teneis", "habeis visto", "has visto",
            "viste", "vas a", "vais a", "van a", "estas", "estais", "sigues", "seguis",
            "todo bien", "que tal"),
        "rhetorical": (
            "por que", "porque", "como es posible", "en serio", "acaso", "o que", "a quien",
            "quien no", "de verdad", "no\\?", "verdad\\?", "para cuando", "sera"),
    },
    "en": {
        "interrogative": (
            "what", "whats", "how", "when", "whens", "where", "wheres", "why", "who", "whos",
            "which", "whose", "do you", "does", "did you", "are you", "is there", "is it",
            "can you", "can i", "could you", "will you", "would you", "have you", "has anyone",
            "anyone", "how about", "should i", "did", "do u", "r u"),
        "complaint": (
            "doesn'?t work", "does not work", "not working", "stopped working", "won'?t let",
            "wont let", "can'?t (?:get|log|connect|access|download|use)", "down again", "is down",
            "it'?s down", "worst", "terrible", "awful", "horrible", "scam", "ripped off",
            "still waiting", "been waiting", "still no", "still not", "no response", "charged",
            "overcharged", "refund", "crash\\w*", "broken", "delayed", "delay", "cancel+ed",
            "error", "complain\\w*", "customer service", "disappoint\\w*",
            "fed up", "sick of", "unacceptable", "ridiculous", "useless", "fix (?:it|this|your)",
            "get your (?:stuff|shit|act) together", "haven'?t (?:received|gotten|got)",
            "still haven'?t", "hasn'?t (?:arrived|come)", "where'?s my", "wasted",
            "screw(?:ed|ing) up", "ruin(?:ed|s)?", "escalated", "frustrat\\w*", "lack of"),
        "request": (
            "please", "pls", "plz", "help", "help me", "follow me", "follow back", "dm me",
            "dm", "direct message", "contact me", "contact", "call me", "send me", "email me",
            "refund", "need", "share", "retweet", "rt this", "give me", "let me know",
            "come to", "come w", "could you", "can you", "would you", "how about"),
        "thanks": (
            "thank you", "thanks", "thx", "ty", "thank u", "cheers", "congrats",
            "congratulations", "happy birthday", "well done", "kudos", "grateful"),
        "positive": (
            "love", "loved", "awesome", "amazing", "great", "best", "fantastic", "excellent",
            "brilliant", "perfect", "nice", "beautiful", "wonderful", "good job",
            "recommend", "favourite", "favorite"),
        "second_person": (
            "you", "u", "your", "ur", "you're", "youre", "ya", "yall", "y'all"),
        "service": (
            "app", "service", "customer", "internet", "wifi", "phone", "order", "delivery",
            "flight", "store", "shop", "bank", "card", "bill", "account", "update", "package",
            "product", "price", "server", "website", "site", "purchase", "subscription",
            "prime", "support"),
        "asks_audience": (
            "anyone", "anybody", "any of you", "who wants", "who'?s going", "who is going",
            "who'?s up for", "who'?s coming", "wanna", "want to come", "do you think",
            "what do you think", "did you see", "have you seen", "have you heard",
            "are you going", "you going", "will you", "are you", "do you know",
            "you know if", "how'?s your", "how was", "how is it", "what did you think",
            "what about you", "what about u", "let me know"),
        "rhetorical": (
            "why", "how could", "who cares", "seriously", "really", "who the", "what the",
            "since when", "c'?mon", "don'?t they", "right\\?", "am i the only",
            "does life", "what am i"),
    },
    "pt": {
        "interrogative": (
            "que", "o que", "como", "quando", "onde", "por que", "porque", "pq", "quem", "qual",
            "quais", "quanto", "alguem sabe", "voce", "voces"),
        "complaint": (
            "nao funciona", "nao consigo", "nao chegou", "pessim[oa]", "horrivel", "golpe",
            "vergonha", "cobrad[oa]", "cobraram", "ainda nao", "de novo", "erro", "reclamacao",
            "decepcionad[oa]", "cansad[oa] de"),
        "request": (
            "por favor", "pfv", "ajuda", "me ajuda", "me segue", "segue de volta", "dm",
            "manda", "preciso", "reembolso", "contato"),
        "thanks": ("obrigad[oa]", "valeu", "parabens", "feliz aniversario"),
        "positive": (
            "amei", "amo", "perfeit[oa]", "lind[oa]", "maravilhos[oa]", "otim[oa]", "o melhor",
            "a melhor", "incrivel", "melhor"),
        "second_person": ("voce", "voces", "vc", "vcs", "te", "tu"),
        "service": ("app", "servico", "atendimento", "cliente", "internet", "pedido", "produto",
                    "preco", "loja", "banco", "cartao", "conta"),
        "asks_audience": ("alguem", "quem vai", "quem quer", "voces acham", "o que acham",
                          "voce vai", "vc vai", "tudo bem"),
        "rhetorical": ("por que", "porque", "pq", "sera", "serio", "quem liga"),
    },
    "fr": {
        "interrogative": (
            "que", "quoi", "comment", "quand", "ou", "pourquoi", "qui", "quel", "quelle",
            "quels", "combien", "est-ce", "est ce", "toi", "vous", "tu"),
        "complaint": (
            "ne marche pas", "marche pas", "ne fonctionne pas", "fonctionne pas", "nul",
            "nulle", "arnaque", "honte", "toujours pas", "encore", "erreur", "plainte",
            "decu", "decue", "inadmissible", "scandale", "en panne", "rembourse\\w*"),
        "request": (
            "s'il vous plait", "svp", "stp", "aide", "aidez", "besoin", "suivez", "dm",
            "contactez", "envoyez"),
        "thanks": ("merci", "felicitations", "bravo", "joyeux anniversaire"),
        "positive": ("genial", "excellent", "super", "parfait", "magnifique", "adore",
                     "j'aime", "top", "meilleur"),
        "second_person": ("tu", "toi", "vous", "te", "ton", "ta", "votre"),
        "service": ("appli", "service", "client", "internet", "commande", "livraison", "vol",
                    "magasin", "banque", "carte", "facture", "compte", "produit", "prix"),
        "asks_audience": ("quelqu'un", "qui vient", "qui veut", "vous pensez",
                          "tu penses", "vous avez vu", "tu as vu", "ca va"),
        "rhetorical": ("pourquoi", "serieux", "serieusement", "qui s'en fout"),
    },
    "it": {
        "interrogative": (
            "che", "cosa", "come", "quando", "dove", "perche", "chi", "quale", "quanto",
            "quanti", "qualcuno sa", "hai", "avete", "sai", "sapete", "ma"),
        "complaint": (
            "non funziona", "non va", "non riesco", "pessim[oa]", "vergogna", "truffa",
            "ancora non", "di nuovo", "errore", "reclamo", "delus[oa]", "schifo", "vergognatevi",
            "rimborso"),
        "request": (
            "per favore", "per piacere", "aiuto", "aiutatemi", "seguimi", "dm", "contattare",
            "mandami", "ho bisogno"),
        "thanks": ("grazie", "complimenti", "auguri", "bravo", "brava"),
        "positive": ("bellissim[oa]", "ottim[oa]", "perfett[oa]", "fantastic[oa]", "adoro",
                     "mi piace", "il migliore", "stupend[oa]"),
        "second_person": ("tu", "ti", "te", "voi", "vi", "hai", "avete", "sei"),
        "service": ("app", "servizio", "cliente", "internet", "ordine", "consegna", "volo",
                    "negozio", "banca", "carta", "bolletta", "conto", "prodotto", "prezzo"),
        "asks_audience": ("qualcuno", "chi viene", "chi vuole", "che ne pensate",
                          "che ne pensi", "avete visto", "hai visto", "tutto bene"),
        "rhetorical": ("perche", "ma davvero", "sul serio", "chi se ne frega"),
    },
    "de": {
        "interrogative": (
            "was", "wie", "wann", "wo", "warum", "wieso", "weshalb", "wer", "welche", "welcher",
            "wieviel", "wie viel", "gibt es", "hast du", "habt ihr", "kann ich", "kannst du",
            "konnt ihr", "weiss jemand", "soll ich"),
        "complaint": (
            "funktioniert nicht", "geht nicht", "kaputt", "schlecht", "schlechteste", "betrug",
            "abzocke", "immer noch nicht", "schon wieder",
            "fehler", "beschwerde", "enttauscht", "unverschamt", "schade", "storung"),
        "request": (
            "bitte", "hilfe", "helft", "folgt", "follow me", "dm", "kontakt", "schickt",
            "brauche", "erstattung"),
        "thanks": ("danke", "vielen dank", "glückwunsch", "gluckwunsch", "herzlichen"),
        "positive": ("super", "toll", "genial", "klasse", "perfekt", "wunderbar", "liebe",
                     "beste", "geil"),
        "second_person": ("du", "dich", "dir", "ihr", "euch", "sie"),
        "service": ("app", "service", "kunde", "internet", "bestellung", "lieferung", "flug",
                    "laden", "bank", "karte", "rechnung", "konto", "produkt", "preis"),
        "asks_audience": ("jemand", "wer kommt", "wer will", "was meint ihr",
                          "was denkt ihr", "habt ihr", "hast du", "kommst du"),
        "rhetorical": ("warum", "wieso", "ernsthaft", "wirklich", "wen interessiert"),
    },
}

CUE_NAMES: Final = ("interrogative", "complaint", "request", "thanks", "positive",
                    "second_person", "service", "asks_audience", "rhetorical")


def _compile(alternatives: tuple[str, ...]) -> re.Pattern[str]:
    # longest first, so that "no funciona" is found before "no"
    body = "|".join(sorted(alternatives, key=len, reverse=True))
    return re.compile(rf"(?<![\w@#])(?:{body})(?![\w])")


_PATTERNS: Final = {lang: {cue: _compile(words) for cue, words in cues.items()}
                    for lang, cues in _LEXICONS.items()}
_ANY_LANGUAGE: Final = {cue: _compile(tuple(word for cues in _LEXICONS.values()
                                            for word in cues[cue])) for cue in CUE_NAMES}
# A clause's first word after the start, a sentence end or an opening "¿": where an
# interrogative asks rather than relates ("¿qué tal?" / "lo que dije").
_CLAUSE_START: Final = re.compile(r"(?:^|[.!?¿¡:;\n]|\s-)\s*(?:@\w+\s*)*(?:[\"'«(]\s*)?")
_HANDLES_AHEAD: Final = re.compile(r"^(?:\.?@\w+[\s,:]*)+")
_SARCASM_MARK: Final = re.compile(r"\(\s*\?\s*\)")
_TAG_QUESTION: Final = re.compile(
    r"(?:\bno|\bverdad|\beh|\bright|\bhuh|\bnon|\bne|\boder|\bvero|\bnao)\s*\?+\s*\W*$")
_RETWEET: Final = re.compile(r"^\s*RT @\w+")
_URL: Final = re.compile(r"https?://|\bhttp\b")
# laughter and "?!" mark jokes and exclamations more often than questions to answer
_LAUGHTER: Final = re.compile(r"\b(?:(?:ja|je|ha|he|ah|kk|rs){2,}\w*|lol|lmao|xd|mdr|ahah\w*)\b")
_EXCLAIMED_QUESTION: Final = re.compile(r"\?+\s*!|!\s*\?")

FEATURE_NAMES: Final = (
    "bias", "question_mark", "question_mark_end", "inverted_question_mark",
    "interrogative_opens_clause", "interrogative_anywhere", "tag_question", "exclamations",
    "complaint_cues", "request_cues", "thanks_cues", "positive_cues", "second_person",
    "service_words", "addressed", "url", "log_words",
    "negative", "neutral", "positive", "negative_x_service", "negative_x_complaint",
    "question_x_addressed", "positive_x_thanks", "laughter", "exclaimed_question",
    "question_marks", "asks_audience", "rhetorical_cues", "rhetorical_x_negative",
    "asks_x_question",
)


def lexicon(lang: str) -> Mapping[str, re.Pattern[str]]:
    """The cue patterns of a language (every language's for one without its own)."""
    return _PATTERNS.get(lang.split("-")[0].lower(), _ANY_LANGUAGE)


def is_retweet(text: str) -> bool:
    """Whether the text is a retweet (``RT @handle: ...``): a copy, never answered.

    >>> is_retweet("RT @acme: nuevo plan"), is_retweet("¿RT si te gusta?")
    (True, False)
    """
    return _RETWEET.match(text) is not None


def _interrogative_opens_clause(folded: str, interrogative: re.Pattern[str]) -> bool:
    return any(interrogative.match(folded, start.end()) is not None
               for start in _CLAUSE_START.finditer(folded))


def cue_features(text: str, lang: str, scores: Mapping[str, float],
                 *, addressed: bool = False) -> np.ndarray:
    """The feature vector of one mention (:data:`FEATURE_NAMES` order), float32.

    ``scores`` are the mention's sentiment scores (``negative``, ``neutral``, ``positive``);
    ``addressed`` says a listened brand's handle is in the text. A text that opens with
    handles (a reply) is addressed too.
    """
    folded = _SARCASM_MARK.sub(" ", fold(text)).strip()
    patterns = lexicon(lang)
    counts = {cue: len(patterns[cue].findall(folded)) for cue in CUE_NAMES}
    body = _HANDLES_AHEAD.sub("", folded)
    question = "?" in folded
    question_end = body.rstrip(" .!)\"'\u2026*:/-").endswith("?") or bool(
        re.search(r"\?\W*$", body))
    opens = _interrogative_opens_clause(body, patterns["interrogative"])
    is_addressed = addressed or _HANDLES_AHEAD.match(folded) is not None
    negative = float(scores.get("negative", 0.0))
    neutral = float(scores.get("neutral", 0.0))
    positive = float(scores.get("positive", 0.0))
    service_or_complaint = min(counts["service"], 2) / 2
    values = (
        1.0, float(question), float(question_end), float("¿" in folded), float(opens),
        float(min(counts["interrogative"], 3)) / 3, float(_TAG_QUESTION.search(body) is not None),
        float(min(folded.count("!"), 3)) / 3,
        float(min(counts["complaint"], 3)), float(min(counts["request"], 3)),
        float(min(counts["thanks"], 2)), float(min(counts["positive"], 3)),
        float(min(counts["second_person"], 3)) / 3, service_or_complaint,
        float(is_addressed), float(_URL.search(folded) is not None),
        math.log1p(len(body.split())) / 4,
        negative, neutral, positive, negative * service_or_complaint,
        negative * min(counts["complaint"], 2) / 2, float(question) * float(is_addressed),
        positive * min(counts["thanks"], 1),
        float(_LAUGHTER.search(folded) is not None),
        float(_EXCLAIMED_QUESTION.search(folded) is not None),
        float(min(folded.count("?"), 3)) / 3,
        float(min(counts["asks_audience"], 2)) / 2, float(min(counts["rhetorical"], 2)) / 2,
        negative * float(counts["rhetorical"] > 0),
        float(question) * float(counts["asks_audience"] > 0),
    )
    return np.asarray(values, dtype=np.float32)
