"""The synthetic firehose's words: brand names, templates per language and tone, fillers.

What :class:`pipeline.connectors.generator.FirehoseGenerator` writes its mentions from;
edit here to change what the demo's people say, there to change how often and when.
"""

from __future__ import annotations

from typing import Final

# Surface forms of each demo brand, per language (what people actually type).
BRAND_NAMES: Final[dict[str, dict[str, list[str]]]] = {
    "acme-mobile": {
        "_": ["Acme Mobile", "@acmemobile", "#AcmeMobile", "acme mobile"],
        "es": ["Acme Móvil", "Acme Mobile", "@acmemobile"],
        "pt": ["Acme Móvel", "Acme Mobile", "@acmemobile"],
    },
    "telvia": {"_": ["Telvia", "@telvia", "#Telvia", "TELVIA"]},
    "nimbus-bank": {
        "_": ["Nimbus Bank", "@nimbusbank", "#NimbusBank"],
        "es": ["Banco Nimbus", "@nimbusbank"],
        "pt": ["Banco Nimbus", "@nimbusbank"],
        "fr": ["Banque Nimbus", "@nimbusbank"],
    },
    "orbita-bank": {
        "_": ["Orbita Bank", "@orbitabank"],
        "es": ["Banco Órbita", "@orbitabank"],
        "pt": ["Banco Órbita", "@orbitabank"],
        "fr": ["Banque Orbita", "@orbitabank"],
    },
    "lumo-air": {"_": ["Lumo Air", "@lumoair", "#LumoAir", "LumoAir"]},
}

# Relative share of each brand in the steady background.
BRAND_WEIGHTS: Final[dict[str, float]] = {
    "acme-mobile": 0.35, "telvia": 0.2, "nimbus-bank": 0.2, "orbita-bank": 0.1, "lumo-air": 0.15,
}

LANGUAGE_WEIGHTS: Final[dict[str, float]] = {
    "es": 0.34, "en": 0.3, "pt": 0.16, "fr": 0.12, "de": 0.04, "it": 0.04,
}

# {b} is the brand; the rest are filled from FILLERS. Sentiment: negative, neutral, positive.
TEMPLATES: Final[dict[str, dict[str, list[str]]]] = {
    "es": {
        "negative": [
            "Llevo {n} horas sin {service} con {b}. Vergüenza de servicio",
            "{b} me ha cobrado dos veces la factura y nadie responde 😡",
            "Pésima atención de {b}, me cuelgan cada vez que llamo",
            "Otra vez caído {b}... ¿alguien más sin {service}?",
            "No contratéis {b}, son unos estafadores",
            "Harto de {b}. Me cambio de compañía este mes",
        ],
        "neutral": [
            "¿Alguien sabe si {b} tiene oferta para {service}?",
            "{b} anuncia cambios en sus tarifas a partir de {month}",
            "Comparando {b} con otras opciones, ¿qué me recomendáis?",
            "Hoy he pasado por la tienda de {b} en el centro",
        ],
        "positive": [
            "Muy contento con {b}, el {service} va genial",
            "Gracias {b} por resolverlo tan rápido 👏",
            "La nueva app de {b} es una maravilla",
            "Cinco años con {b} y ni una queja",
        ],
    },
    "en": {
        "negative": [
            "{b} has been down for {n} hours and support is useless",
            "Worst customer service ever. Thanks for nothing {b} 😤",
            "{b} charged me twice this month. Still no refund",
            "Is {b} down again? No {service} since this morning",
            "Never signing up with {b} again, total scam",
            "Cancelled my {b} contract today. Fed up",
        ],
        "neutral": [
            "Does anyone know if {b} covers {service} abroad?",
            "{b} announced new plans starting in {month}",
            "Thinking about switching to {b}, any experiences?",
            "Just got a letter from {b} about my account",
        ],
        "positive": [
            "Honestly {b} support was amazing today, fixed in minutes",
            "Loving the new {b} app, so smooth 😍",
            "Switched to {b} last year, best decision",
            "Shoutout to {b} for the quick refund 🙌",
        ],
    },
    "pt": {
        "negative": [
            "Estou há {n} horas sem {service} da {b}. Que vergonha",
            "A {b} me cobrou duas vezes e ninguém resolve 😡",
            "Atendimento péssimo da {b}, desligam na cara",
            "{b} caiu de novo? Mais alguém sem {service}?",
            "Não assinem a {b}, é golpe",
        ],
        "neutral": [
            "Alguém sabe se a {b} tem promoção de {service}?",
            "A {b} anunciou mudanças nos planos em {month}",
            "Vale a pena trocar para a {b}?",
        ],
        "positive": [
            "Muito satisfeito com a {b}, o {service} está ótimo",
            "Obrigado {b} pelo atendimento rápido 👏",
            "O novo app da {b} ficou excelente",
        ],
    },
    "fr": {
        "negative": [
            "Toujours pas de {service} chez {b} depuis {n} heures, c'est honteux",
            "{b} m'a facturé deux fois et personne ne répond 😡",
            "Service client de {b} catastrophique, je résilie",
            "{b} encore en panne ? Quelqu'un d'autre sans {service} ?",
        ],
        "neutral": [
            "Quelqu'un sait si {b} propose une offre {service} ?",
            "{b} annonce de nouveaux forfaits en {month}",
            "Je pense passer chez {b}, des avis ?",
        ],
        "positive": [
            "Très content de {b}, le {service} marche super bien",
            "Merci {b} pour la réponse rapide 👏",
            "La nouvelle appli {b} est top",
        ],
    },
    "de": {
        "negative": [
            "Seit {n} Stunden kein {service} bei {b}. Unverschämt",
            "{b} hat doppelt abgebucht und niemand antwortet",
        ],
        "neutral": ["Hat jemand Erfahrung mit {b}?", "{b} ändert die Tarife ab {month}"],
        "positive": [
            "Sehr zufrieden mit {b}, alles läuft super", "Danke {b} für die schnelle Hilfe",
        ],
    },
    "it": {
        "negative": [
            "Da {n} ore senza {service} con {b}. Vergognoso",
            "{b} mi ha addebitato due volte e nessuno risponde",
        ],
        "neutral": [
            "Qualcuno sa se {b} ha offerte per {service}?", "{b} cambia le tariffe da {month}",
        ],
        "positive": ["Molto soddisfatto di {b}, tutto funziona", "Grazie {b} per l'aiuto veloce"],
    },
}

FILLERS: Final[dict[str, dict[str, list[str]]]] = {
    "service": {
        "es": ["internet", "fibra", "datos", "cobertura", "la app"],
        "en": ["internet", "signal", "data", "the app", "online banking"],
        "pt": ["internet", "sinal", "dados", "o app"],
        "fr": ["internet", "réseau", "données", "l'appli"],
        "de": ["Internet", "Netz", "Empfang"],
        "it": ["internet", "rete", "connessione"],
    },
    "month": {
        "es": ["enero", "marzo", "junio"], "en": ["January", "March", "June"],
        "pt": ["janeiro", "março"], "fr": ["janvier", "mars"],
        "de": ["Januar", "März"], "it": ["gennaio", "marzo"],
    },
}

CRISIS_TEMPLATES: Final[dict[str, list[str]]] = {
    "es": [
        "{b} ha filtrado los datos de sus clientes y no dice nada #{tag}",
        "Escándalo: {b} expone datos personales de millones de usuarios #{tag}",
        "¿Cómo es posible que {b} no avise de la filtración? Vergonzoso #{tag}",
        "Me acaban de vaciar la cuenta tras la filtración de {b}. Denuncia ya #{tag}",
    ],
    "en": [
        "{b} leaked customer data and is saying nothing #{tag}",
        "Massive data breach at {b}, millions of users exposed #{tag}",
        "My account was emptied after the {b} leak. Disgraceful #{tag}",
    ],
    "pt": [
        "A {b} vazou dados dos clientes e não fala nada #{tag}",
        "Vazamento de dados na {b}, que absurdo #{tag}",
    ],
    "fr": [
        "{b} a laissé fuiter les données de ses clients, scandaleux #{tag}",
        "Fuite de données chez {b}, aucune communication #{tag}",
    ],
}

SENTIMENT_MIX: Final[dict[str, float]] = {"negative": 0.25, "neutral": 0.4, "positive": 0.35}
# what makes two people's posts on one template differ, with a leaders plan (below)
PLACES: Final = ("Madrid", "Lisboa", "Paris", "Berlin", "Roma", "Lima", "Porto", "Lyon",
                  "Bogotá", "Sevilla", "Quito", "Nantes", "Milano", "Recife", "Dublin")
TAGS: Final = ("dia", "hoy", "today", "casa", "work", "trabalho", "maison", "viaje")
FIRST_NAMES: Final = (
    "ana", "joao", "marie", "john", "lucia", "pedro", "sofia", "lea", "mateo", "emma",
    "carlos", "julia", "hugo", "nina", "diego", "clara", "omar", "ines", "paul", "rita",
)
