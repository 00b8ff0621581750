"""The sentence shown with an offer, from a candidate's reason and its parameters.

Kept as data (a reason key and parameters) in the store so the same offer reads in the
customer's own language; English and Finnish here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oppiva.errors import InvalidInput

TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "buys_every": "You buy this about every {days} days",
        "due": "You buy this about every {days} days: it is due about now",
        "bought_with": "Popular with customers who buy {products}",
        "similar_customers": "Customers who shop like you favour this",
        "popular": "Popular with our customers",
        "new_popular": "New, and popular with customers like you",
    },
    "fi": {
        "buys_every": "Ostat tätä noin {days} päivän välein",
        "due": "Ostat tätä noin {days} päivän välein: sen aika on nyt",
        "bought_with": "Suosittu tuotteiden {products} ostajien keskuudessa",
        "similar_customers": "Kaltaisesi asiakkaat suosivat tätä",
        "popular": "Asiakkaidemme suosikki",
        "new_popular": "Uutuus, jota kaltaisesi asiakkaat suosivat",
    },
}
REASONS = frozenset(TEMPLATES["en"])


def offer_language(code: str | None) -> str:
    """The language an offer is written in for a customer who speaks `code`: theirs when the
    templates have it, else English."""
    return code if code in TEMPLATES else "en"


_AND = {"en": " and ", "fi": " ja "}


def _products(names: Sequence[str], language: str) -> str:
    names = [str(n) for n in names][:2]
    return _AND[language].join(names) if names else "-"


def explain(reason: str, params: Mapping[str, Any] | None = None, language: str = "en") -> str:
    """Render a reason in `language` ("en" or "fi"); unknown reasons and languages are refused."""
    if language not in TEMPLATES:
        raise InvalidInput("language", f"{language!r} is not one of {sorted(TEMPLATES)}")
    template = TEMPLATES[language].get(reason)
    if template is None:
        raise InvalidInput("reason", f"{reason!r} is not one of {sorted(REASONS)}")
    values = dict(params or {})
    values["products"] = _products(values.get("products", ()), language)
    days = values.get("days")
    values["days"] = "?" if days is None else f"{float(days):.0f}"
    return template.format(**values)
